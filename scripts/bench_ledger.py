"""Benchmark the ledger on large binaries against sha256sum and (when installed) diffoscope.

Cases: the largest system shared library found (a 100 MB-class ELF such as libLLVM) copied with
5 flipped bytes, and a generated 64 MB PE (mingw-w64, a random blob in .rdata) copied with 4
flipped bytes. For each: reprover's full ledger (isolated LIEF region maps + one streaming pass
that finds and labels every run, as `compare_files` does; cold fork server included, in a fresh
interpreter), `sha256sum` of both files, and
`diffoscope` when it is on PATH. Peak memory is the ledger process plus its largest parsing
child (an upper bound: they overlap). Timings belong here, never in tests.

Targets (issue 3): ledger within 10x of sha256sum of both files, 100x faster than diffoscope,
peak memory under 2x the larger file + 150 MB.

Run: `.venv/bin/python scripts/bench_ledger.py`; `bench_ledger()` returns the rows for
scripts/bench.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib")
RUNNER = r"""
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from reprover.compare import ledger
from reprover.compare.isolation import worker
a, b = Path(sys.argv[1]), Path(sys.argv[2])
result = ledger.explain(a, b)
elapsed = time.perf_counter() - start
if worker._server is not None:
    worker._server.close()
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "self": me, "children": kids,
                  "differences": len(result.differences),
                  "regions": sorted({d.region for d in result.differences})}))
"""

Row = tuple[str, float, float, float | None, int, int, str]


def largest_elf() -> Path | None:
    """The largest ELF shared library under the usual system folders (40-300 MB)."""
    best: tuple[int, Path] | None = None
    for folder in CANDIDATES:
        for root, _, files in os.walk(folder):
            for name in files:
                if ".so" not in name:
                    continue
                path = Path(root) / name
                try:
                    size = path.stat().st_size
                    if not 40 << 20 <= size <= 300 << 20 or path.is_symlink():
                        continue
                    with path.open("rb") as handle:
                        if handle.read(4) != b"\x7fELF":
                            continue
                except OSError:
                    continue
                if best is None or size > best[0]:
                    best = (size, path)
    return best[1] if best else None


def generated_pe(folder: Path, size: int = 64 << 20) -> Path | None:
    """A mingw-w64 PE with `size` random bytes in .rdata, or None without the compiler."""
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        return None
    (folder / "blob.bin").write_bytes(os.urandom(size))
    (folder / "big.c").write_text(
        '__asm__(".section .rdata\\n.globl blob\\nblob:\\n.incbin \\"blob.bin\\"\\n.text");\n'
        "int main(void) { return 0; }\n"
    )
    out = folder / "big.exe"
    subprocess.run(
        ["x86_64-w64-mingw32-gcc", "-O1", "big.c", "-o", str(out)], cwd=folder, check=True
    )
    return out


def flipped(source: Path, target: Path, count: int) -> None:
    """Copy `source` to `target` with `count` bytes flipped, spread over the file."""
    shutil.copyfile(source, target)
    size = target.stat().st_size
    with target.open("r+b") as handle:
        for i in range(count):
            at = size * (i + 1) // (count + 1)
            handle.seek(at)
            byte = handle.read(1)[0]
            handle.seek(at)
            handle.write(bytes([byte ^ 0xFF]))


def timed(argv: list[str], timeout: float) -> float | None:
    start = time.perf_counter()
    try:
        subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def measure(name: str, a: Path, b: Path, *, diffoscope_timeout: float = 900) -> Row:
    """One case: (name, ledger s, sha256sum s, diffoscope s or None, peak bytes, size, regions)."""
    subprocess.run(["cat", str(a), str(b)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    sha = min(timed(["sha256sum", str(a), str(b)], 120) or 0.0 for _ in range(3))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(a), str(b)], capture_output=True, text=True, check=True
    )
    data = json.loads(proc.stdout)
    diffoscope = None
    if shutil.which("diffoscope"):
        diffoscope = timed(["diffoscope", "--text", os.devnull, str(a), str(b)], diffoscope_timeout)
    size = max(a.stat().st_size, b.stat().st_size)
    peak = int(data["self"] + data["children"])
    return (name, data["seconds"], sha, diffoscope, peak, size, ", ".join(data["regions"]))


def bench_ledger() -> list[Row]:
    """Run every case and return the rows (see `measure`)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="reprover-bench-") as tmp:
        folder = Path(tmp)
        elf = largest_elf()
        if elf is not None:
            a, b = folder / "elf-a", folder / "elf-b"
            shutil.copyfile(elf, a)
            flipped(elf, b, 5)
            rows.append(measure(f"ELF {elf.name}", a, b))
            a.unlink()
            b.unlink()
        pe = generated_pe(folder)
        if pe is not None:
            b = folder / "big-b.exe"
            flipped(pe, b, 4)
            rows.append(measure("PE generated 64 MB", pe, b))
    return rows


def main() -> int:
    """Print the figures with ratios against the targets."""
    for name, ledger, sha, diffoscope, peak, size, regions in bench_ledger():
        budget = 2 * size + (150 << 20)
        print(f"{name}: {size / 1e6:.1f} MB")
        print(f"  ledger     {ledger:7.2f} s   ({ledger / sha:.1f}x sha256sum; target <= 10x)")
        print(f"  sha256sum  {sha:7.2f} s   (both files)")
        if diffoscope is None:
            print("  diffoscope  not installed or timed out")
        else:
            print(
                f"  diffoscope {diffoscope:7.2f} s   (ledger is {diffoscope / ledger:.0f}x faster)"
            )
        print(f"  peak memory {peak / 1e6:.0f} MB (budget {budget / 1e6:.0f} MB)")
        print(f"  regions: {regions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
