#!/usr/bin/env python3
"""Benchmarks: reprover against the physical limit (sha256sum, cmp) and against diffoscope.

Prints each figure and its ratio side by side, in one run. Timings never go into pass/fail
tests; they live here and in the README.

    python scripts/bench.py                 # everything, 1 GiB pairs
    python scripts/bench.py --size-mib 256  # smaller pairs
    python scripts/bench.py --only compare  # one section: compare, ledger, intoto, tlog,
                                            # archives, sandbox, campaign, rpmsig, msisig

Each command runs in its own process (warm page cache: every file is read once before timing);
the figure is the best wall time of --repeat runs and the peak RSS of that process.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import reprover

HERE = Path(__file__).resolve().parent
REPROVER = [sys.executable, "-m", "reprover"]


@dataclass
class Figure:
    """One measured command."""

    label: str
    seconds: float
    peak_mib: float


def measure(
    label: str, argv: Sequence[str], *, repeat: int, ok_codes: tuple[int, ...] = (0,)
) -> Figure:
    """Best wall time and peak RSS of `argv` over `repeat` runs."""
    best, peak = float("inf"), 0.0
    timer = shutil.which("time") or "/usr/bin/time"
    for _ in range(repeat):
        # Peak memory from GNU time, which forks the command from its own small process: a
        # child spawned from this (larger) Python inherits its high-water mark at exec.
        report = tempfile.NamedTemporaryFile(prefix="bench-rss-", delete=False)  # noqa: SIM115
        report.close()
        command = [timer, "-f", "%M", "-o", report.name, *argv] if Path(timer).exists() else argv
        start = time.perf_counter()
        pid = os.posix_spawnp(
            command[0],
            list(command),
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
        )
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in ok_codes:
            raise SystemExit(f"{label}: {' '.join(argv)} exited {code}")
        best = min(best, elapsed)
        text = Path(report.name).read_text().strip().splitlines()
        Path(report.name).unlink()
        rss_kib = int(text[-1]) if text and text[-1].isdigit() else usage.ru_maxrss
        peak = max(peak, rss_kib / 1024)
    return Figure(label, best, peak)


def table(title: str, baseline: Figure, others: list[Figure]) -> None:
    """Print figures with their ratio to `baseline`."""
    print(f"\n{title}")
    print(f"  {'command':44} {'seconds':>9} {'ratio':>8} {'peak MiB':>9}")
    for fig in [baseline, *others]:
        ratio = fig.seconds / baseline.seconds if baseline.seconds else float("nan")
        print(f"  {fig.label:44} {fig.seconds:9.3f} {ratio:7.2f}x {fig.peak_mib:9.1f}")


def make_pair(folder: Path, size: int, flips: int) -> tuple[Path, Path]:
    """Two files of `size` bytes of pseudo-random data, differing in `flips` bytes."""
    a, b = folder / "released.bin", folder / "rebuilt.bin"
    block = os.urandom(1 << 20)
    with a.open("wb") as out:
        for i in range(size >> 20):
            out.write(block[i % 7 :] + block[: i % 7])
    shutil.copyfile(a, b)
    with b.open("r+b") as out:
        for k in range(flips):
            out.seek((k + 1) * size // (flips + 1))
            out.write(b"\xff")
    return a, b


def bench_compare(size_mib: int, repeat: int) -> None:
    """Issue 2: identical pair vs sha256sum of both; differing pair vs cmp."""
    with tempfile.TemporaryDirectory(
        prefix="reprover-bench-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        a, b = make_pair(Path(tmp), size_mib << 20, flips=5)
        same = Path(tmp) / "copy.bin"
        shutil.copyfile(a, same)
        for path in (a, b, same):  # warm the page cache
            with path.open("rb") as stream:
                while stream.read(1 << 24):
                    pass
        sha = measure("sha256sum both files", ["sha256sum", str(a), str(same)], repeat=repeat)
        ours = measure(
            "reprover diff (identical pair)",
            [*REPROVER, "diff", "--quiet", str(a), str(same)],
            repeat=repeat,
        )
        table(f"identical {size_mib} MiB pair", sha, [ours])
        cmp = measure("cmp -l", ["cmp", "-l", str(a), str(b)], repeat=repeat, ok_codes=(1,))
        sha_diff = measure("sha256sum both files", ["sha256sum", str(a), str(b)], repeat=repeat)
        ours_diff = measure(
            "reprover diff (5 differing bytes)",
            [*REPROVER, "diff", "--quiet", "--format", "json", str(a), str(b)],
            repeat=repeat,
            ok_codes=(1,),
        )
        table(f"{size_mib} MiB pair differing in 5 bytes", cmp, [sha_diff, ours_diff])


def bench_bounded(repeat: int, size_mib: int = 64) -> None:
    """Issue 19: a pair differing in every other byte; the ledger stays bounded (memory, report)."""
    with tempfile.TemporaryDirectory(
        prefix="reprover-bench-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        a, b = Path(tmp) / "released.bin", Path(tmp) / "rebuilt.bin"
        block = os.urandom(1 << 20)
        flipped = bytes(x ^ 0xFF if i % 2 == 0 else x for i, x in enumerate(block))
        with a.open("wb") as out_a, b.open("wb") as out_b:
            for _ in range(size_mib):
                out_a.write(block)
                out_b.write(flipped)
        report = Path(tmp) / "report.json"
        # `cmp -l` into a pipe: to /dev/null GNU cmp stops at the first difference
        listing = f"cmp -l {a} {b} | wc -l"
        cmp = measure("cmp -l | wc -l (every byte listed)", ["sh", "-c", listing], repeat=repeat)
        ours = measure(
            "reprover diff --format json",
            [*REPROVER, "diff", "--quiet", "--format", "json", "-o", str(report), str(a), str(b)],
            repeat=repeat,
            ok_codes=(1,),
        )
        table(f"{size_mib} MiB pair differing in every other byte", cmp, [ours])
        print(f"  JSON report: {report.stat().st_size / 1024:.0f} KiB")


def _optional(name: str) -> Callable[..., None] | None:
    sys.path.insert(0, str(HERE))
    try:
        module = __import__(name)
    except ImportError:
        return None
    return getattr(module, "main", None)


def main() -> int:
    """Run the selected benchmark sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=[
            "compare",
            "bounded",
            "ledger",
            "intoto",
            "tlog",
            "archives",
            "sandbox",
            "campaign",
            "rpmsig",
            "msisig",
        ],
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    # Bytecode as an installed reprover has it: with PYTHONDONTWRITEBYTECODE set (as in some
    # CI and container images) every run would compile reprover's sources again (0.3 s).
    compileall.compile_dir(Path(reprover.__file__).parent, quiet=1)
    if args.only in (None, "compare"):
        bench_compare(args.size_mib, args.repeat)
    if args.only in (None, "bounded"):
        bench_bounded(args.repeat)
    for section, module in (
        ("ledger", "bench_ledger"),
        ("intoto", "bench_intoto"),
        ("tlog", "bench_tlog"),
        ("archives", "bench_archives"),
        ("sandbox", "bench_sandbox"),
        ("campaign", "bench_campaign"),
        ("rpmsig", "bench_rpmsig"),
        ("msisig", "bench_msisig"),
    ):
        if args.only in (None, section):
            run = _optional(module)
            if run is None:
                print(f"\n{section}: scripts/{module}.py has no main(); skipped")
            else:
                run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
