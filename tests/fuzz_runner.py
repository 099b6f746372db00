"""Run one reprover command on a fuzzer input, bounded in time and memory (scripts/fuzz.py).

Owns: running `reprover.cli.main(argv)` in a forked child of a long-lived fuzz worker (the
worker keeps one LIEF fork server warm; its stderr, and its parsing children's, goes to a log
read after each command), or `python -m reprover` as a fresh process; in both, `RLIMIT_AS`,
`RLIMIT_CPU` and a wall-clock deadline, and the outcome: exit code or signal, time, peak RSS,
stdout and stderr.
Does not own: making inputs (`fuzz_support`) or judging outcomes (`fuzz_oracle.judge`).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

WARM_UP = Path(__file__).resolve().parent / "fixtures" / "ledger" / "elf-date" / "a"
CAP = 1 << 16  # bytes of stdout/stderr kept per command
SUBPROCESS = (
    "import sys\nfrom reprover.cli import main\nfrom reprover.compare.isolation import worker\n"
    "code = main(sys.argv[1:])\nif worker._server is not None: worker._server.close()\n"
    "sys.exit(code)\n"
)  # `python -m reprover` plus a clean close of the fork server, so RSS counts its children


@dataclass(frozen=True)
class Limits:
    """Per-command bounds: wall-clock seconds and address space (bytes)."""

    seconds: float = 60.0
    memory: int = 4 << 30
    slow: float = 5.0


@dataclass
class Outcome:
    """How one command ended."""

    code: int | None
    signal: int | None
    seconds: float
    rss: int
    stdout: bytes
    stderr: str
    timed_out: bool = False


def _limit(memory: int, seconds: float) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _collect(pid: int, start: float, limits: Limits, out: object, err: object) -> Outcome:
    deadline = start + limits.seconds
    timed_out = False
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, 9) if _is_leader(pid) else os.kill(pid, 9)
            wpid, status, usage = os.wait4(pid, 0)
            timed_out = True
            break
        time.sleep(0.001)
    seconds = time.monotonic() - start
    data = []
    for stream in (out, err):
        stream.seek(0)  # type: ignore[attr-defined]
        data.append(stream.read(CAP))  # type: ignore[attr-defined]
        stream.close()  # type: ignore[attr-defined]
    code = os.waitstatus_to_exitcode(status)
    return Outcome(
        code if code >= 0 else None, -code if code < 0 else None, seconds,
        usage.ru_maxrss * 1024, data[0], data[1].decode("utf-8", "replace"), timed_out,
    )  # fmt: skip


def _is_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def run_forked(argv: list[str], limits: Limits) -> Outcome:
    """`reprover.cli.main(argv)` in a forked child with RLIMIT_AS, RLIMIT_CPU and a deadline."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - _collect closes
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            _limit(limits.memory, limits.seconds)
            from reprover.cli import main
            from reprover.compare.isolation import worker

            if worker._server is not None:
                # The worker checked the server just before forking; Popen.poll() in this child
                # cannot see its parent's child and would call it dead, starting a cold server.
                worker._server.alive = lambda: True  # type: ignore[method-assign]
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - anything escaping main() is a finding
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return _collect(pid, start, limits, out, err)


def run_subprocess(argv: list[str], limits: Limits) -> Outcome:
    """`python -m reprover argv` (see SUBPROCESS) with RLIMIT_AS, RLIMIT_CPU and a deadline."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - _collect closes
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBPROCESS, *argv], stdin=subprocess.DEVNULL, stdout=out,
        stderr=err, start_new_session=True,
        preexec_fn=lambda: _limit(limits.memory, limits.seconds),  # noqa: PLW1509
    )  # fmt: skip
    outcome = _collect(proc.pid, start, limits, out, err)
    proc.returncode = outcome.code if outcome.code is not None else -(outcome.signal or 9)
    return outcome


def fresh_server() -> None:
    """Start (or restart) this worker's LIEF fork server so forked children share it."""
    from reprover.compare.isolation import worker

    server = worker._server
    if server is not None and server.alive():
        return
    if server is not None:
        server.proc.kill()
        server.proc.wait()
    worker._server = None
    worker.parse_regions(WARM_UP)


def kill_server() -> None:
    from reprover.compare.isolation import worker

    if worker._server is not None:
        worker._server.proc.kill()
        worker._server.proc.wait()
        worker._server = None


class ParserLog:
    """The fork server's stderr (and its children's), read after each command (fork mode)."""

    fd: int | None = None
    pos = 0

    @classmethod
    def start(cls) -> None:
        """Send this worker's fd 2 (inherited by the fork server it starts) to a temp file."""
        cls.fd = os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR, 0o600)
        os.dup2(cls.fd, 2)

    @classmethod
    def new(cls) -> str:
        if cls.fd is None:
            return ""
        data = os.pread(cls.fd, CAP, cls.pos)
        cls.pos = os.fstat(cls.fd).st_size
        return data.decode("utf-8", "replace")
