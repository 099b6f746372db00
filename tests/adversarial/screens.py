"""What a person sees: a real terminal emulator (tmux) and a real GitHub Markdown renderer.

`terminal` runs a command in a detached tmux pane and returns the screen as tmux drew it and
the pane title the command left, so a test can tell whether bytes of a report cleared the
screen, painted text or set the window title. `raw_control` proves the emulator honours those
sequences, so a test that finds none of them on screen cannot pass by accident.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

TMUX = shutil.which("tmux")
DONE = "__reprover_test_done__"


def terminal(argv: list[str], tmp: Path, *, cwd: Path | None = None) -> tuple[str, str]:
    """Run `argv` in a 160x50 tmux pane; return (screen text, pane title)."""
    assert TMUX is not None, "tmux must be installed (.ci/apt-packages.txt)"
    runs = len(list(tmp.glob("run-in-terminal-*.sh")))
    sock = tmp / f"tmux-{runs}.sock"
    script = tmp / f"run-in-terminal-{runs}.sh"
    script.write_text(
        f"cd {shlex.quote(str(cwd or tmp))}\n{shlex.join(argv)}\necho {DONE} $?\nsleep 120\n"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    base = [TMUX, "-S", str(sock), "-f", os.devnull]
    subprocess.run(
        [*base, "new-session", "-d", "-x", "160", "-y", "50", "sh", str(script)],
        env=env,
        check=True,
    )
    try:
        deadline = time.monotonic() + 120
        screen = ""
        while time.monotonic() < deadline:
            screen = _capture(base)
            if DONE in screen:
                break
            time.sleep(0.2)
        assert DONE in screen, f"the command did not finish in the terminal:\n{screen}"
        title = subprocess.run(
            [*base, "display-message", "-p", "#{pane_title}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return screen, title
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, check=False)


def _capture(base: list[str]) -> str:
    return subprocess.run(
        [*base, "capture-pane", "-p", "-S", "-200"], capture_output=True, text=True, check=True
    ).stdout


def reprover(*args: str | Path) -> list[str]:
    """The argv that runs the installed reprover CLI with this Python."""
    return [sys.executable, "-m", "reprover", *map(str, args)]


def raw_control(tmp: Path, text: bytes) -> tuple[str, str]:
    """Print `text` raw in the terminal: what an unescaped report would do."""
    blob = tmp / "raw.bin"
    blob.write_bytes(text)
    return terminal(["cat", str(blob)], tmp)
