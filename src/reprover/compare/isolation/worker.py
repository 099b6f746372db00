"""Isolated LIEF parsing: region maps come from a child process with hard limits.

Owns: a small fork server (`python -m reprover.compare.isolation.parse_child`, started once, LIEF
imported once) that forks one child per file; the child sets `RLIMIT_AS` and `RLIMIT_CPU`,
parses, and writes its region map as JSON to a pipe the parent reads under a wall-clock
deadline. Per file this costs a fork (milliseconds), not a fresh interpreter. Every failure of
the child (exception, crash, signal, timeout, memory limit, malformed or oversized reply)
becomes `Unparsed` with the reason.
Does not own: what the regions mean (`ledger`). The parent never imports LIEF and never unpickles
anything: the reply is JSON, checked field by field, so even a compromised child can only lie
about regions, never run code in the parent.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from reprover.compare.regions.map import ARCHES, RegionMap
from reprover.model import Kind

MIN_TIMEOUT = 20.0
MIN_MEMORY = 1 << 30
BYTES_PER_SECOND = 20 << 20  # one more second of parse time per 20 MB
MAX_REPLY = 1 << 30


@dataclass(frozen=True)
class Unparsed:
    """The child could not produce a region map; `reason` says why, for the report."""

    reason: str


def limits_for(size: int) -> tuple[float, int]:
    """Return the (wall-clock seconds, extra address-space bytes) allowed to parse `size` bytes.

    LIEF needs about 1-2.3x the file during a parse; the child also maps the file once.
    """
    return MIN_TIMEOUT + size / BYTES_PER_SECOND, MIN_MEMORY + 4 * size


class _Server:
    """The fork server process and its control socket (one request at a time)."""

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reprover.compare.isolation.parse_child", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.close()
        self.sock = parent
        self.lines: BinaryIO = parent.makefile("rb")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def raw(self, request: dict[str, Any], timeout: float) -> bytes | Unparsed:
        """Send one request, return the child's raw reply or why there is none."""
        read_end, write_end = os.pipe()
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [write_end])
        finally:
            os.close(write_end)
        try:
            pid = int(json.loads(self.lines.readline())["pid"])
            reply, reason = _read_reply(read_end, pid, timeout)
        finally:
            os.close(read_end)
        status = int(json.loads(self.lines.readline())["status"])
        if reason is not None:
            return Unparsed(reason)
        if status != 0:
            return Unparsed(_death(status))
        return reply

    def close(self) -> None:
        """Close the control socket; the server sees end-of-file and exits."""
        self.lines.close()
        self.sock.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


_lock = threading.Lock()
_server: _Server | None = None


def parse_regions(
    path: Path, *, timeout: float | None = None, memory: int | None = None
) -> RegionMap | Unparsed:
    """Parse `path` in a limited child process and return its region map.

    Args:
        path: the file to map.
        timeout: wall-clock seconds before the child is killed (default from `limits_for`).
        memory: address space the child may add to what it maps after start-up (default from
            `limits_for`).

    Returns:
        The region map, or `Unparsed` with the reason the child failed. Never raises for
        anything the file's content can cause.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Unparsed(f"cannot read {path.name}: {exc.strerror or exc}")
    default_timeout, default_memory = limits_for(size)
    timeout = default_timeout if timeout is None else timeout
    memory = default_memory if memory is None else memory
    request = {"path": str(path.resolve()), "memory": memory, "cpu": int(timeout) + 1}
    raw = _ask(request, timeout)
    return raw if isinstance(raw, Unparsed) else _decode(raw)


def ask(request: dict[str, Any], *, timeout: float = MIN_TIMEOUT) -> bytes | Unparsed:
    """Run `request` (plain JSON data; `op` names the job) in a limited child (`MIN_MEMORY`
    more address space, `timeout` seconds); return its raw reply or why there is none."""
    return _ask({**request, "memory": MIN_MEMORY, "cpu": int(timeout) + 1}, timeout)


def warm() -> None:
    """Start the fork server now, so its start-up (importing LIEF) overlaps the caller's own
    work (an archive being read) instead of delaying the first parse. Never raises: a server
    that cannot start now is started, or reported, on first use."""
    with _lock:
        try:
            _running()
        except OSError:
            return


def _running() -> _Server:
    """The fork server, started when there is none or it died; call with `_lock` held.

    Raises:
        OSError: it cannot be started.
    """
    global _server  # noqa: PLW0603 - one fork server per process, started on first use
    if _server is None or not _server.alive():
        _server = None
        _server = _Server()
        atexit.register(_server.close)
    return _server


def _ask(request: dict[str, Any], timeout: float) -> bytes | Unparsed:
    global _server  # noqa: PLW0603 - one fork server per process, started on first use
    with _lock:
        for attempt in (1, 2):
            try:
                return _running().raw(request, timeout)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                if _server is not None:
                    _server.proc.kill()
                    _server = None
                if attempt == 2:
                    return Unparsed(f"parsing worker failed: {exc}")
    return Unparsed("parsing worker failed")  # pragma: no cover - the loop always returns


def _read_reply(fd: int, pid: int, timeout: float) -> tuple[bytes, str | None]:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    while True:
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            _kill(pid)
            return b"", f"parser timed out after {timeout:.0f} s (killed)"
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks), None
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_REPLY:
            _kill(pid)
            return b"", "parser reply too large (killed)"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _death(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGXCPU:
            return f"parser exceeded its CPU limit ({name})"
        if -code == signal.SIGKILL:
            return f"parser was killed ({name}), probably by its memory limit"
        return f"parser crashed ({name})"
    return f"parser exited with status {code}"


def _decode(raw: bytes) -> RegionMap | Unparsed:
    try:
        data = json.loads(raw)
    except ValueError:
        return Unparsed("parser returned a malformed reply")
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return Unparsed(data["error"])
    if not _valid(data):
        return Unparsed("parser returned a malformed reply")
    data["regions"] = [tuple(r) for r in data["regions"]]
    data["structures"] = [tuple(r) for r in data["structures"]]
    data["symbols"] = [tuple(s) for s in data["symbols"]]
    return data  # type: ignore[no-any-return]


def _valid(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("format"), str):
        return False
    size = data.get("size")
    regions, symbols, notes = data.get("regions"), data.get("symbols"), data.get("notes")
    if not (isinstance(regions, list) and isinstance(symbols, list) and isinstance(notes, list)):
        return False
    if not isinstance(size, int) or not all(isinstance(x, list) for x in (regions, symbols, notes)):
        return False
    kinds = {k.value for k in Kind}
    return (
        all(
            isinstance(r, list)
            and len(r) == 4
            and isinstance(r[0], int)
            and isinstance(r[1], int)
            and 0 <= r[0] < r[1] <= size
            and isinstance(r[2], str)
            and r[3] in kinds
            for r in regions
        )
        and all(
            isinstance(s, list)
            and len(s) == 3
            and isinstance(s[0], int)
            and isinstance(s[1], int)
            and isinstance(s[2], str)
            for s in symbols
        )
        and all(isinstance(n, str) for n in notes)
        and _valid_extras(data, size)
    )


def _valid_extras(data: dict[str, Any], size: int) -> bool:
    """The executable spans, top-level structures and findings, each checked like regions."""
    spans, structures, findings = data.get("exec"), data.get("structures"), data.get("findings")
    if not (
        isinstance(spans, list) and isinstance(structures, list) and isinstance(findings, list)
    ):
        return False

    def span(item: Any, width: int) -> bool:
        return (
            isinstance(item, list)
            and len(item) == width
            and isinstance(item[0], int)
            and isinstance(item[1], int)
            and 0 <= item[0] < item[1] <= size
        )

    code = data.get("code", [])
    return (
        isinstance(code, list)
        and all(
            span(x, 4) and x[2] in ("", *ARCHES) and isinstance(x[3], int) and x[3] >= 0
            for x in code
        )
        and all(span(x, 2) for x in spans)
        and all(span(x, 3) and isinstance(x[2], str) for x in structures)
        and all(isinstance(f, str) for f in findings)
    )
