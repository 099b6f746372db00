"""Benchmark link recording: reprover's parallel recorder against in-toto's own, 20,000 files.

The tree: 20,000 files (1 to 32 KiB, a few of 1 MiB) in 200 nested folders, plus a `.git`
folder and `*.pyc` files both recorders must skip. Both recorders hash the same tree, warm
cache, best of `repeat`; the artifact dictionaries must be equal, or the benchmark fails.
Target (issue 4): reprover is not slower than in-toto (ratio <= 1).

Run: `.venv/bin/python scripts/bench_intoto.py [--files N] [--repeat N]`; `bench_intoto()`
returns the timings for scripts/bench.py, and `main()` prints them.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from in_toto.runlib import record_artifacts_as_dict

from reprover.digest import hash_file
from reprover.intoto import hash_artifacts, list_artifacts


def make_tree(root: Path, files: int) -> None:
    """Write `files` files of mixed sizes, a `.git` folder and some `.pyc` files."""
    rng = random.Random(4)  # noqa: S311 - test data, not secrets
    for i in range(files):
        folder = root / f"d{i % 20}" / f"e{i % 200}"
        folder.mkdir(parents=True, exist_ok=True)
        size = 1 << 20 if i % 2000 == 0 else rng.randint(1024, 32 * 1024)
        (folder / f"f{i}.c").write_bytes(rng.randbytes(size))
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "pack").write_bytes(b"x" * 4096)
    for i in range(50):
        (root / f"d{i % 20}" / f"m{i}.pyc").write_bytes(b"pyc")


def best(repeat: int, run: object) -> tuple[float, object]:
    assert callable(run)
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_intoto(files: int = 20_000, repeat: int = 3) -> dict[str, float]:
    """Time both recorders on a fresh tree; return seconds for each and the ratio."""
    with tempfile.TemporaryDirectory(prefix="reprover-bench-intoto-") as tmp:
        root = Path(tmp)
        make_tree(root, files)
        record_artifacts_as_dict(["."], base_path=str(root))  # warm the page cache
        theirs_s, theirs = best(
            repeat, lambda: record_artifacts_as_dict(["."], base_path=str(root))
        )
        ours_s, ours = best(repeat, lambda: hash_artifacts(list_artifacts(root), hash_file))
        if ours != theirs:
            raise SystemExit("the recorders disagree: the benchmark is void")
    return {"files": files, "in_toto_s": theirs_s, "reprover_s": ours_s, "ratio": ours_s / theirs_s}


def main(argv: list[str] | None = None) -> int:
    """Print the timings and the ratio; exit 1 when reprover is slower."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv or [])
    row = bench_intoto(args.files, args.repeat)
    print(
        f"\nin-toto link recording, {row['files']:,} files, {os.cpu_count()} cores "
        f"(best of {args.repeat})"
    )
    print(f"  in-toto record_artifacts_as_dict  {row['in_toto_s']:8.3f} s")
    print(f"  reprover list + parallel hash     {row['reprover_s']:8.3f} s")
    print(f"  ratio reprover / in-toto          {row['ratio']:8.2f}  (target <= 1)")
    return 0 if row["ratio"] <= 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
