"""Progress on stderr: a live status line on a terminal, plain step lines otherwise.

Owns: showing `reprover.verify` progress to a person: on a terminal one redrawn line per stage
(clone and build with elapsed time and the build's last log line, hashing with a byte bar,
comparison with a counter), each stage closed by a line saying how long it took; when stderr
is not a terminal, one plain line per step (for CI logs); nothing with --quiet.
Does not own: what the steps are (see `reprover.verify`). Written by hand, not with `rich`:
one status line needs ~150 lines, and a terminal UI library would be a new direct dependency.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from types import TracebackType
from typing import TextIO

from reprover.render.safe import visible
from reprover.verify.options import ProgressEvent

TICK_SECONDS = 0.2
SPINNER = "|/-\\"
BAR = 24
DEFAULT_COLUMNS = 100

_UNPRINTABLE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Strip escape sequences, then show what is left of control, bidi and invisible
    characters as visible escapes (a build log must not drive or reorder the terminal)."""
    return visible(_UNPRINTABLE.sub("", text))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


class ProgressDisplay:
    """Receives step messages and events; draws them on `stream`.

    Use as a context manager: leaving it closes the current stage's line, also on errors, so
    that an error message starts on a clean line.
    """

    def __init__(self, stream: TextIO, *, quiet: bool = False, live: bool | None = None) -> None:
        self.stream = stream
        self.quiet = quiet
        self.live = (not quiet) and (stream.isatty() if live is None else live)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._stage: str | None = None
        self._message = ""
        self._started = 0.0
        self._total: int | None = None
        self._done = 0
        self._detail = ""
        self._frame = 0

    # the two callbacks `reprover.verify.verify` takes
    def message(self, text: str) -> None:
        """A step message: printed as a plain line when the display is not live."""
        if not self.quiet and not self.live:
            self.stream.write(f"reprover: {printable(text)}\n")
            self.stream.flush()

    def event(self, event: ProgressEvent) -> None:
        """A structured update; drawn only when live. Thread-safe."""
        if not self.live:
            return
        with self._lock:
            if event.message:
                self._finish_locked()
                self._stage, self._message = event.stage, printable(event.message)
                self._started, self._total, self._done, self._detail = (
                    time.monotonic(),
                    event.total,
                    0,
                    "",
                )
                self._start_ticker()
            self._done += event.advance
            if event.detail is not None:
                self._detail = printable(event.detail)
            self._draw_locked()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    def close(self, *, failed: bool = False) -> None:
        """Close the current stage's line and stop redrawing."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._finish_locked(failed=failed)

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                if self._stage is not None:
                    self._frame += 1
                    self._draw_locked()

    def _line(self, width: int) -> str:
        elapsed = time.monotonic() - self._started
        message = self._message
        if self._detail and len(message) > width * 2 // 5:  # leave room for the log line
            message = message[: width * 2 // 5 - 1] + "\u2026"
        parts = [SPINNER[self._frame % len(SPINNER)], message, f"{elapsed:.1f} s"]
        if self._total:
            done = min(self._done, self._total)
            filled = BAR * done // self._total
            bar = "[" + "#" * filled + "-" * (BAR - filled) + "]"
            amount = (
                f"{_size(done)} / {_size(self._total)}"
                if self._stage == "hash"
                else f"{done}/{self._total}"
            )
            parts += [bar, amount]
        if self._detail:
            parts.append(f"| {self._detail}")
        return "  ".join(parts)

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, io.UnsupportedOperation):
            columns = 0
        return columns or DEFAULT_COLUMNS

    def _draw_locked(self) -> None:
        if self._stage is None:
            return
        width = max(20, self._columns() - 1)
        line = self._line(width)
        if len(line) > width:
            line = line[: width - 1] + "\u2026"
        self.stream.write(f"\r\x1b[2K{line}")
        self.stream.flush()

    def _finish_locked(self, *, failed: bool = False) -> None:
        if self._stage is None:
            return
        elapsed = time.monotonic() - self._started
        mark = "stopped during" if failed else "done:"
        self.stream.write(f"\r\x1b[2Kreprover: {mark} {self._message} ({elapsed:.1f} s)\n")
        self.stream.flush()
        self._stage = None
