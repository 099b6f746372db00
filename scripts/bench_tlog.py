"""Benchmark the evidence log: 1,000,000 appends in batches; proofs at 10^3 .. 10^6 entries.

Appends go through `reprover.tlog.log.append` (lock, checkpoint check, bundles, tiles, fsync,
signed checkpoint) in batches of `--batch` small entries. When the log reaches 10^3, 10^4,
10^5 and 10^6 entries it measures, over `--samples` random entries, building an inclusion
proof from the tiles on disk (a fresh reader each time: tile reads included), checking it,
and a consistency proof from a random older size; proof sizes are printed in hashes. Finally
it audits the whole log (every tile and the root recomputed).
Targets (issue 16): at least 20,000 appends/s; proofs under 10 ms; proof size logarithmic.

Run: `.venv/bin/python scripts/bench_tlog.py [--entries N] [--batch N] [--samples N]`;
`main()` is called by scripts/bench.py.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover.tlog import audit, log, merkle
from reprover.tlog.store import Store


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:7.2f} ms (max {max(seconds) * 1000:6.2f})"


def measure_proofs(folder: Path, size: int, root: bytes, samples: int) -> None:
    """Inclusion and consistency proofs at the current size, each from a fresh tile reader."""
    rng = random.Random(size)  # noqa: S311 - sampling, not secrets
    build, check, cons, cons_check = [], [], [], []
    lengths, cons_lengths = set(), set()
    with Store(folder) as store:
        for _ in range(samples):
            index = rng.randrange(size)
            start = time.perf_counter()
            reader = log.TreeReader(store, size)
            path = merkle.inclusion_proof(reader, index, size)
            middle = time.perf_counter()
            leaf = reader.tile(0, index // 256)[(index % 256) * 32 : (index % 256 + 1) * 32]
            merkle.verify_inclusion(leaf, index, size, path, root)
            build.append(middle - start)
            check.append(time.perf_counter() - middle)
            lengths.add(len(path))
            old = rng.randrange(1, size + 1)
            old_root = merkle.range_hash(log.TreeReader(store, size), 0, old)  # the monitor's
            start = time.perf_counter()
            reader = log.TreeReader(store, size)
            proof = merkle.consistency_proof(reader, old, size)
            middle = time.perf_counter()
            merkle.verify_consistency(old, size, old_root, root, proof)
            cons.append(middle - start)
            cons_check.append(time.perf_counter() - middle)
            cons_lengths.add(len(proof))
    print(
        f"  {size:>9,}  inclusion {_ms(build)}  check {_ms(check)}  "
        f"{min(lengths)}-{max(lengths)} hashes ({max(lengths) * 32} B)"
    )
    print(
        f"  {'':>9}  consistency {_ms(cons)}  check {_ms(cons_check)}  "
        f"{min(cons_lengths)}-{max(cons_lengths)} hashes"
    )


def run(entries: int, batch: int, samples: int) -> None:
    """Grow a log to `entries`, measuring at each power of ten."""
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(
        prefix="reprover-tlog-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        folder = Path(tmp) / "log"
        verifier = log.create(folder, "bench.example/log", key)
        milestones = [10**k for k in range(3, 8) if 10**k <= entries]
        size, spent, calls = 0, 0.0, 0
        print(f"\nevidence log: {entries:,} entries of ~20 bytes, batches of {batch:,}")
        print(f"  {'size':>9}  proof timings: median (max) of {samples} random entries")
        for target in milestones:
            while size < target:
                count = min(batch, target - size)
                contents = [b"attestation %012d" % i for i in range(size, size + count)]
                start = time.perf_counter()
                done = log.append(folder, contents, key)
                spent += time.perf_counter() - start
                calls += 1
                size = done.checkpoint.size
            measure_proofs(folder, size, done.checkpoint.root, samples)
        print(
            f"  appends: {size:,} entries in {spent:.1f} s over {calls} batches = "
            f"{size / spent:,.0f} entries/s (goal >= 20,000)"
        )
        start = time.perf_counter()
        with Store(folder) as store:
            result = audit.audit(store, verifier)
        elapsed = time.perf_counter() - start
        print(
            f"  audit of {result.checkpoint.size:,} entries (every tile and the root): "
            f"{elapsed:.1f} s = {result.checkpoint.size / elapsed:,.0f} entries/s"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv or [])
    run(args.entries, args.batch, args.samples)


if __name__ == "__main__":
    main(sys.argv[1:])
