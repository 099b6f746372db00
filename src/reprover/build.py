"""The hermetic build runner.

Owns: running a recipe's command inside the sandbox (`reprover.sandbox`) in a normalized
environment (a fixed PATH plus the recipe's env; a private HOME; `LC_ALL=C.UTF-8`, `TZ=UTC`,
umask 022, `SOURCE_DATE_EPOCH`; nothing from the verifier's own environment), under a timeout,
with its output kept in a log of bounded size in a private folder; and fingerprinting the
toolchain the recipe names, inside the same sandbox.
Does not own: the sandbox itself (`reprover.sandbox`), fetching the source
(`reprover.source`) or taking and judging outputs (`reprover.outputs`, `reprover.verify`).

Threat model: the recipe and every program it starts are hostile. No program named by the
recipe or found in the checkout runs outside the sandbox: the toolchain's `--version` runs in
it too. When the build ends or is killed, every process it started is gone: under the strong
sandbox its pid namespace ends with it; otherwise its process group is killed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from reprover.errors import BuildError
from reprover.model import BuildInfo, Recipe
from reprover.sandbox import Sandbox
from reprover.workarea import create_file

DEFAULT_BUILD_PATH = "/tmp/reprover-build"  # noqa: S108 - a path inside the sandbox only
BUILD_PATH_ENV = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
LOG_TAIL_LINES = 25
LOG_LIMIT = 256 << 20  # bytes of build output kept; the rest is counted and dropped
POLL_SECONDS = 0.25
DRAIN_SECONDS = 2.0
REAP_SECONDS = 5.0
TOOL_VARIABLES = ("CC", "CXX", "LD", "AR", "AS", "CPP", "RUSTC", "GO")
DEFAULT_TOOLS = ("cc", "make")
FINGERPRINT_TIMEOUT = 30
FINGERPRINT_LIMIT = 64 * 1024
_FINGERPRINT_SCRIPT = (
    'for t do p=$(command -v -- "$t") || continue; case $p in /*) ;; *) continue;; esac; '
    "printf '\\036%s\\037' \"$t\"; \"$p\" --version </dev/null 2>&1 || printf '\\035'; done "
    f"| head -c {FINGERPRINT_LIMIT}"
)


def normalized_env(recipe: Recipe, *, home: Path, source_date_epoch: int) -> dict[str, str]:
    """The build's whole environment: fixed PATH, locale and time settings, then the recipe's."""
    env = {
        "PATH": BUILD_PATH_ENV,
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }
    env.update(recipe.env)
    return env


def run(
    recipe: Recipe,
    box: Sandbox,
    *,
    log_path: Path,
    source_date_epoch: int,
    on_output: Callable[[str], None] | None = None,
) -> BuildInfo:
    """Run the recipe's command confined by `box` and return how it ran.

    `log_path` must not exist yet (it is created with O_EXCL|O_NOFOLLOW). `on_output`, when
    given, is called about every `POLL_SECONDS` while the build runs with the last complete
    line of its log (or "" before the first), for a progress display.

    Raises:
        BuildError: the command cannot start, exits non-zero, or exceeds the timeout; the
            message carries the tail of the log, whose full text stays at `log_path`.
    """
    argv = (
        ["/bin/sh", "-c", recipe.command]
        if isinstance(recipe.command, str)
        else list(recipe.command)
    )
    env = normalized_env(recipe, home=box.home, source_date_epoch=source_date_epoch)
    toolchain = fingerprint_toolchain(recipe, env, box)
    log_fd = create_file(log_path)
    read_end, write_end = os.pipe()
    try:
        try:
            process = subprocess.Popen(
                box.argv(argv),
                cwd=box.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                umask=0o022,
                start_new_session=True,
            )
        except OSError as exc:
            raise BuildError(
                f"cannot start the build command {argv[0]!r}: {exc.strerror or exc}",
                hint="check [build] command; programs are looked up on PATH",
            ) from exc
        finally:
            os.close(write_end)
        pump = _LogPump(read_end, log_fd)
        try:
            code = _wait(process, recipe.timeout, log_path, on_output)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            pump.finish()
            raise BuildError(
                f"the build exceeded its timeout of {recipe.timeout} s and was killed",
                hint=f"raise [build] timeout if it needs longer; full log: {log_path}",
                details=f"full log: {log_path}\n{_tail(log_path)}",
            ) from None
        except BaseException:
            _kill_group(process)
            raise
        _kill_group(process)  # weak isolation: whatever the build left behind in its group
        pump.finish()
    finally:
        with contextlib.suppress(OSError):
            os.close(read_end)
        os.close(log_fd)
    if code != 0:
        network_note = "" if not box.isolation.network_isolated else " (it ran without network)"
        raise BuildError(
            f"the build failed with exit code {code}{network_note}",
            hint=f"full log: {log_path}",
            details=f"full log: {log_path}\n{_tail(log_path)}",
        )
    return BuildInfo(
        command=recipe.command,
        build_path=str(box.build_path),
        env=dict(recipe.env),
        toolchain=toolchain,
        network_isolated=box.isolation.network_isolated,
        isolation=box.isolation.name,
        log_path=str(log_path),
    )


class _LogPump:
    """Copies the build's output into the log, up to LOG_LIMIT bytes, in a thread."""

    def __init__(self, source: int, log_fd: int):
        self.source, self.log_fd = source, log_fd
        self.kept = self.dropped = 0
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            if self.ended.is_set() and deadline is None:
                deadline = time.monotonic() + DRAIN_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                return  # a survivor holds the pipe open (weak isolation): stop reading it
            ready, _, _ = select.select([self.source], [], [], POLL_SECONDS)
            if not ready:
                continue
            chunk = os.read(self.source, 1 << 16)
            if not chunk:
                return
            keep = chunk[: max(0, LOG_LIMIT - self.kept)]
            self.kept += len(keep)
            self.dropped += len(chunk) - len(keep)
            while keep:
                keep = keep[os.write(self.log_fd, keep) :]

    def finish(self) -> None:
        """Wait for the output to drain (briefly), then note any dropped bytes in the log."""
        self.ended.set()
        self.thread.join()
        if self.dropped:
            note = f"\n[reprover: {self.dropped} further bytes of build output dropped: the "
            note += f"log keeps the first {LOG_LIMIT} bytes]\n"
            os.write(self.log_fd, note.encode())


def _wait(
    process: subprocess.Popen[bytes],
    timeout: float,
    log_path: Path,
    on_output: Callable[[str], None] | None,
) -> int:
    """Wait for the build, reporting its last log line every POLL_SECONDS when asked to.

    Raises:
        subprocess.TimeoutExpired: the build outlived `timeout` seconds.
    """
    if on_output is None:
        return process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return process.wait(timeout=max(0.0, min(POLL_SECONDS, left)))
        except subprocess.TimeoutExpired:
            if left <= POLL_SECONDS:
                raise
        on_output(last_log_line(log_path))


def last_log_line(log_path: Path) -> str:
    """The last complete, non-empty line of the log (read from its last 4 KiB), or ""."""
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - 4096))
            tail = log.read()
    except OSError:
        return ""
    lines = [line for line in tail.split(b"\n")[:-1] if line.strip()]
    return lines[-1].decode("utf-8", "replace").strip() if lines else ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the build's process group and every descendant; wait until they are gone.

    Under the strong sandbox the first descendant is the pid namespace's init: it exits only
    after every process of the namespace is dead, so once it is gone nothing of the build runs.
    """
    descendants = _descendants(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + REAP_SECONDS
    while any(Path(f"/proc/{pid}").exists() for pid in descendants):
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)


def _descendants(pid: int) -> list[int]:
    """Every descendant of `pid` now (from /proc/<pid>/task/*/children), nearest first."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop(0)
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                new = [int(c) for c in children.read_text().split()]
                found += new
                pending += new
    return found


def _tail(log_path: Path) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - 64 * 1024))
            lines = log.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return "(the build log cannot be read)"
    return "last lines of the build log:\n" + "\n".join(f"  | {line}" for line in lines)


def fingerprint_toolchain(recipe: Recipe, env: Mapping[str, str], box: Sandbox) -> dict[str, str]:
    """First line of `--version` of the tools the recipe names, run inside the sandbox.

    Those are: CC, CXX, ... and every other `[build] env` value that names a program, the
    command's argv[0], and `cc` and `make`. They are looked up on the build's PATH inside the
    sandbox, so a program from the checkout runs confined like the build. A tool that fails,
    hangs or is missing is left out; output is limited to FINGERPRINT_LIMIT bytes.
    """
    named = [env.get(v, "") for v in TOOL_VARIABLES] + list(recipe.env.values())
    names: list[str] = [value.split()[0] for value in named if value.strip()]
    if isinstance(recipe.command, tuple):
        names.append(recipe.command[0])
    names.extend(DEFAULT_TOOLS)
    wanted = [n for n in dict.fromkeys(names) if Path(n).name not in {"sh", "bash", "env"}]
    argv = box.argv(["/bin/sh", "-c", _FINGERPRINT_SCRIPT, "fingerprint", *wanted])
    try:
        done = subprocess.run(
            argv,
            cwd=box.cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=FINGERPRINT_TIMEOUT,
            check=False,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    toolchain: dict[str, str] = {}
    for record in done.stdout.split(b"\x1e")[1:]:
        name, _, output = record.partition(b"\x1f")
        if output.endswith(b"\x1d"):
            continue
        lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()]
        first = next((line for line in lines if line), "")
        if first:
            toolchain[name.decode("utf-8", "replace")] = first
    return toolchain
