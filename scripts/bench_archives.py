"""Benchmark archives: a 1 GiB ZIP of 20,000 members (5 changed), a .deb pair, and memory.

The ZIP holds 2 GiB of content (half random, half zeros), about 1 GiB on disk.

Side by side in one run: `sha256sum` of both files (the physical limit), `reprover diff`
(every member compared, the 5 changed ones labelled down to their bytes) and diffoscope with
its default options when it is installed (`apt-get install diffoscope-minimal`; only this
benchmark uses it, never CI), each with its wall time, CPU time and peak memory, and the load
average around them (the machine is shared: CPU time is the steadier figure). Then the peak
memory of comparing ZIP pairs of 2,000, 20,000 and 200,000 tiny members.
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
MEMORY_COUNTS = (2_000, 20_000, 200_000)
NAN = float("nan")


def timed(argv: list[str], *, timeout: float | None = None) -> tuple[float, float, float] | None:
    """Wall seconds, CPU seconds (user + system, children included) and peak RSS in MiB of
    one run (output discarded), or None when it timed out."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = None if timeout is None else start + timeout
    while True:  # polled only when there is a deadline (then to within 10 ms)
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


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
            other = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:] if i in changed else data
            # one ZipInfo per archive: writestr records the CRC, sizes and offset in it, and
            # a shared one gave the released ZIP the rebuilt one's CRCs (a corrupt archive)
            for archive, content in ((za, data), (zb, other)):
                info = zipfile.ZipInfo(
                    f"data/{i // 1000:02d}/member-{i:05d}.bin", (2024, 1, 1, 0, 0, 0)
                )
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, content)
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
    print(f"\n{title} ({a.stat().st_size / 2**20:.0f} MiB each)", flush=True)
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'command':22} {'wall s':>8} {'ratio':>8} {'CPU s':>8} {'peak MiB':>9}")
    sha = timed(["sha256sum", str(a), str(b)]) or (NAN, NAN, NAN)
    ours = timed([*REPROVER, "diff", "--quiet", "--format", "json", "--allow", "archive.mtime",
                  str(a), str(b)]) or (NAN, NAN, NAN)  # fmt: skip
    print(f"  {'sha256sum both files':22} {sha[0]:8.2f} {1:7.2f}x {sha[1]:8.2f} {sha[2]:9.0f}")
    print(f"  {'reprover diff':22} {ours[0]:8.2f} {ours[0] / sha[0]:7.2f}x {ours[1]:8.2f} "
          f"{ours[2]:9.0f}")  # fmt: skip
    if shutil.which("diffoscope") is None:
        print("  diffoscope            not installed (apt-get install diffoscope-minimal)")
        return
    theirs = timed(["diffoscope", "--text", os.devnull, str(a), str(b)], timeout=DIFFOSCOPE_TIMEOUT)
    if theirs is None:
        print(f"  diffoscope             > {DIFFOSCOPE_TIMEOUT:.0f} s (stopped; reprover at least "
              f"{DIFFOSCOPE_TIMEOUT / ours[0]:.0f}x faster)")  # fmt: skip
    else:
        print(f"  {'diffoscope':22} {theirs[0]:8.2f} {theirs[0] / sha[0]:7.2f}x {theirs[1]:8.2f} "
              f"{theirs[2]:9.0f}   (reprover {theirs[0] / ours[0]:.1f}x faster)")  # fmt: skip
    print(f"  load average {os.getloadavg()[0]:.1f} after", flush=True)


def make_tiny(folder: Path, count: int) -> tuple[Path, Path]:
    """Two ZIPs of `count` members of about 12 bytes each, one member changed."""
    out = []
    for side in ("a", "b"):
        path = folder / f"tiny-{count}-{side}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(count):
                info = zipfile.ZipInfo(
                    f"data/{i // 1000:03d}/member-{i:06d}.txt", (2024, 1, 1, 0, 0, 0)
                )
                info.compress_type = zipfile.ZIP_DEFLATED
                changed = side == "b" and i == count // 2
                z.writestr(info, b"changed\n" if changed else f"member {i}\n".encode())
        out.append(path)
    return out[0], out[1]


# 200,000 members a side is the default bound (per side): compared, not stopped.
MEMORY_CHILD = """
import sys
from pathlib import Path
from reprover.compare import compare_artifact
from reprover.digest import hash_file
from reprover.model import Policy
from reprover.policy import judge
a, b = Path(sys.argv[1]), Path(sys.argv[2])
results = compare_artifact("a.zip", a, b, Policy(), digests=(hash_file(a), hash_file(b)),
                           judge=judge)
assert results[0].verdict.value == "different", results[0]
"""


def member_memory(folder: Path) -> None:
    """Peak RSS of comparing ZIP pairs of 2,000, 20,000 and 200,000 tiny members."""
    print("\nZIP pairs of tiny members, one changed: peak memory of the comparison", flush=True)
    print(f"  {'members a side':>14} {'wall s':>8} {'peak MiB':>9}")
    for count in MEMORY_COUNTS:
        a, b = make_tiny(folder, count)
        run = timed([sys.executable, "-c", MEMORY_CHILD, str(a), str(b)]) or (NAN, NAN, NAN)
        print(f"  {count:14,} {run[0]:8.2f} {run[2]:9.0f}", flush=True)
        a.unlink()
        b.unlink()


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
        a.unlink()
        b.unlink()
        member_memory(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048))
