"""Benchmark archives: a 1 GiB ZIP of 20,000 members (5 changed) and a .deb pair.

The ZIP holds 2 GiB of content (half random, half zeros), about 1 GiB on disk.

Side by side in one run: `sha256sum` of both files (the physical limit), `reprover diff`
(every member hashed, the 5 changed ones labelled down to their bytes) and diffoscope when it
is installed (`apt-get install diffoscope-minimal`; only this benchmark uses it, never CI).
Goals (issue 15): within 3x of hashing both files, at least 20x faster than diffoscope.

    python scripts/bench.py --only archives
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPROVER = [sys.executable, "-m", "reprover"]
MEMBERS = 20_000
CHANGED = 5
DEB_PROGRAMS = 400
DIFFOSCOPE_TIMEOUT = 600.0


def timed(argv: list[str], *, timeout: float | None = None) -> float | None:
    """Wall seconds of one run (output discarded), or None when it timed out."""
    start = time.perf_counter()
    try:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def make_zips(folder: Path, total: int) -> tuple[Path, Path]:
    """Two ZIPs of MEMBERS members, `total` bytes of content (half random, half zeros, so
    about half of it on disk), CHANGED members differing by one byte."""
    a, b = folder / "released.zip", folder / "rebuilt.zip"
    size = total // MEMBERS
    noise = os.urandom(1 << 20)
    changed = {(k + 1) * MEMBERS // (CHANGED + 1) for k in range(CHANGED)}
    with (
        zipfile.ZipFile(a, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as za,
        zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zb,
    ):
        for i in range(MEMBERS):
            start = (i * 7919) % ((1 << 20) - size // 2)
            data = noise[start : start + size // 2] + bytes(size - size // 2)
            info = zipfile.ZipInfo(
                f"data/{i // 1000:02d}/member-{i:05d}.bin", (2024, 1, 1, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            za.writestr(info, data)
            if i in changed:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            zb.writestr(info, data)
    return a, b


def make_debs(folder: Path) -> tuple[Path, Path] | None:
    """Two .deb files of /usr/bin's programs, built at two times, one program changed."""
    if shutil.which("dpkg-deb") is None:
        return None
    programs = sorted(p for p in Path("/usr/bin").iterdir() if p.is_file() and not p.is_symlink())
    programs = programs[:DEB_PROGRAMS]  # listed once: both sides hold the same programs
    out = []
    for side, epoch in (("a", 1_700_000_000), ("b", 1_800_000_000)):
        root = folder / f"deb-{side}"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            "Package: bench\nVersion: 1\nArchitecture: all\nMaintainer: b <b@example.com>\n"
            "Description: bench\n"
        )
        target = root / "usr" / "bin"
        target.mkdir(parents=True)
        for program in programs:
            shutil.copyfile(program, target / program.name)
            os.utime(target / program.name, (1_600_000_000, 1_600_000_000))
        if side == "b":
            victim = target / programs[0].name
            data = bytearray(victim.read_bytes())
            data[len(data) // 2] ^= 0xFF
            victim.write_bytes(bytes(data))
            os.utime(victim, (1_600_000_000, 1_600_000_000))
        deb = folder / side / "bench.deb"
        deb.parent.mkdir()
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(deb)],
                       env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        out.append(deb)
    return out[0], out[1]


def compare(title: str, a: Path, b: Path) -> None:
    """Print sha256sum, reprover and diffoscope times for one pair."""
    for path in (a, b):  # warm the page cache
        with path.open("rb") as stream:
            while stream.read(1 << 24):
                pass
    sha = timed(["sha256sum", str(a), str(b)]) or float("nan")
    ours = timed([*REPROVER, "diff", "--quiet", "--format", "json", "--allow", "archive.mtime",
                  str(a), str(b)]) or float("nan")  # fmt: skip
    print(f"\n{title} ({a.stat().st_size / 2**20:.0f} MiB each)", flush=True)
    print(f"  sha256sum both files  {sha:8.2f} s")
    print(f"  reprover diff         {ours:8.2f} s   ({ours / sha:.2f}x sha256sum)")
    if shutil.which("diffoscope") is None:
        print("  diffoscope            not installed (apt-get install diffoscope-minimal)")
        return
    theirs = timed(["diffoscope", "--text", os.devnull, str(a), str(b)], timeout=DIFFOSCOPE_TIMEOUT)
    if theirs is None:
        print(f"  diffoscope            > {DIFFOSCOPE_TIMEOUT:.0f} s (stopped; reprover at least "
              f"{DIFFOSCOPE_TIMEOUT / ours:.0f}x faster)")  # fmt: skip
    else:
        print(f"  diffoscope            {theirs:8.2f} s   (reprover {theirs / ours:.0f}x faster)")


def main(size_mib: int = 2048) -> int:
    """Run both cases."""
    with tempfile.TemporaryDirectory(
        prefix="reprover-bench-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        folder = Path(tmp)
        debs = make_debs(folder)
        if debs is not None:
            compare(f"a .deb pair: two build times, one of {DEB_PROGRAMS} programs changed", *debs)
        a, b = make_zips(folder, size_mib << 20)
        compare(f"ZIP of {MEMBERS} members, {CHANGED} changed", a, b)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048))
