"""Progress on stderr: live on a real terminal (a pty), plain lines in logs, none when quiet."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import Project
from reprover import build, sandbox
from reprover.cli.progress import ProgressDisplay, printable
from reprover.digest import hash_files
from reprover.errors import BuildError
from reprover.model import Recipe
from reprover.verify import Options, verify
from reprover.verify.options import ProgressEvent


def _drain(fd: int, sink: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other side closed
            return
        if not chunk:
            return
        sink.extend(chunk)


def test_live_progress_on_a_terminal(project: Project) -> None:
    manifest = project.manifest(
        command='["sh", "-c", "echo compiling-the-engine; sleep 0.8; make"]'
    )
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    screen = bytearray()
    reader = threading.Thread(target=_drain, args=(master, screen))
    reader.start()
    with open(slave, "w", encoding="utf-8") as stream:  # noqa: PTH123 - a pty file descriptor
        assert stream.isatty()
        with ProgressDisplay(stream) as display:
            report = verify(manifest, Options(), display.message, events=display.event)
    reader.join(timeout=300)  # bounds a hang only: the pty closes when done
    os.close(master)
    text = screen.decode()
    assert report.verdict.value == "pass"
    assert "\r\x1b[2K" in text  # the status line is redrawn in place
    stages = ("cloning", "building in", "hashing 1 released file(s)", "comparing byte for byte")
    for stage in stages:
        assert f"reprover: done: {stage}" in text, stage
    assert "| compiling-the-engine" in text  # the build's last log line, while it ran
    assert "[" + "#" * 24 + "]" in text  # the hashing bar reached its end
    assert "1/1  | hello" in text


def test_plain_lines_when_not_a_terminal(project: Project) -> None:
    stream = io.StringIO()
    with ProgressDisplay(stream) as display:
        verify(project.manifest(), Options(), display.message, events=display.event)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("reprover: hashing ")
    assert lines[1].startswith("reprover: cloning ")
    assert any(line.startswith("reprover: building in ") for line in lines)
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_quiet_prints_nothing(project: Project) -> None:
    stream = io.StringIO()
    with ProgressDisplay(stream, quiet=True) as display:
        verify(project.manifest(), Options(), display.message, events=display.event)
    assert stream.getvalue() == ""


def test_build_log_cannot_drive_the_terminal() -> None:
    assert printable("\x1b[31mred\x1b[0m\x07 ok\x1b]0;title") == "red ok]0;title"


def test_stage_interrupted_by_an_error_ends_its_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=True)
    with pytest.raises(RuntimeError), display:
        display.event(ProgressEvent("build", "building"))
        raise RuntimeError
    assert stream.getvalue().endswith("\r\x1b[2Kreprover: stopped during building (0.0 s)\n")


def test_build_reports_log_lines_and_still_times_out(tmp_path: Path) -> None:
    seen: list[str] = []
    # The timeout leaves a loaded machine time to start the sandbox and print both lines; the
    # sleep is far longer than anything here may take, so ending early proves the kill.
    recipe = Recipe(
        command=("sh", "-c", "echo first-line; echo second-line; sleep 3000"), timeout=10
    )
    isolation = sandbox.find_isolation(network=False, allow_network=False, allow_weak=False)
    (tmp_path / "checkout").mkdir()
    box = sandbox.prepare(
        isolation,
        checkout=tmp_path / "checkout",
        build_path=Path("/build/x"),
        home=tmp_path,
        hidden=(),
    )
    started = time.monotonic()
    with pytest.raises(BuildError, match="timeout of 10 s"):
        build.run(
            recipe, box, log_path=tmp_path / "build.log", source_date_epoch=0,
            on_output=seen.append,
        )  # fmt: skip
    assert time.monotonic() - started < 1000  # killed, not waited for
    assert "second-line" in seen


def test_hashing_reports_every_byte(tmp_path: Path) -> None:
    files = []
    for i, size in enumerate((0, 1, 3 << 20)):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * size)
        files.append(path)
    counted: list[int] = []
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            counted.append(n)

    hash_files(files, on_bytes=on_bytes)
    assert sum(counted) == (3 << 20) + 1
