"""Benchmark the build sandbox: what confining one build costs (goal, issue 11: under 0.2 s).

Measures, as the best of `--repeat` runs: `true` run directly; `true` in the strong sandbox
(bubblewrap: new namespaces, the toolchain bound read-only, a private checkout at the build
path); choosing the isolation (`find_isolation`, which probes bubblewrap once); fingerprinting
`cc` and `make` inside the sandbox; and the whole cost per build (fingerprint + the
build's own sandbox start), i.e. what `reprover verify` adds to a build of `true`; the probe
is made once per process.

Run: `.venv/bin/python scripts/bench_sandbox.py [--repeat N]`; `main()` is called by
scripts/bench.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reprover import build, sandbox
from reprover.model import Recipe


def best(repeat: int, action: Callable[[], object]) -> float:
    """The best wall time of `repeat` calls of `action`, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    """Print the sandbox figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv if argv is not None else [])
    try:
        isolation = sandbox.find_isolation(network=False, allow_network=False, allow_weak=False)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports and moves on
        print(f"\nsandbox: the strong sandbox cannot run here ({exc}); skipped")
        return
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        checkout = Path(folder) / "checkout"
        checkout.mkdir()
        box = sandbox.prepare(
            isolation, checkout=checkout, build_path=Path("/tmp/reprover-build"),
            home=Path(folder), hidden=(),
        )  # fmt: skip
        recipe = Recipe(command=("true",))
        env = build.normalized_env(recipe, home=box.home, source_date_epoch=0)

        def run(argv: list[str]) -> None:
            subprocess.run(argv, cwd=checkout, env=env, check=True)

        direct = best(args.repeat, lambda: run(["true"]))
        confined = best(args.repeat, lambda: run(box.argv(["true"])))
        binds = tuple(isolation.prefix) + tuple(sandbox._toolchain_binds())
        probe = best(args.repeat, lambda: sandbox._works([*binds, "--", "true"]))
        fingerprint = best(args.repeat, lambda: build.fingerprint_toolchain(recipe, env, box))
    per_build = fingerprint + confined - direct
    print("\nbuild sandbox (bubblewrap), best of", args.repeat)
    print(f"  {'true, directly':52} {direct * 1000:8.1f} ms")
    print(f"  {'true, in the sandbox':52} {confined * 1000:8.1f} ms")
    print(f"  {'choosing the isolation (one probe, once per process)':52} {probe * 1000:8.1f} ms")
    print(f"  {'fingerprint cc and make inside the sandbox':52} {fingerprint * 1000:8.1f} ms")
    verdict = "under" if per_build < 0.2 else "OVER"
    print(f"  {'cost per build (fingerprint + start)':52} {per_build * 1000:8.1f} ms"
          f"  ({verdict} the 200 ms goal)")  # fmt: skip
    first = per_build + probe
    print(f"  {'first build of a process (+ probe)':52} {first * 1000:8.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
