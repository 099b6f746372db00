#!/usr/bin/env python3
"""Build reprover's own release (wheel and sdist) reproducibly, and the manifest that proves it.

`python scripts/release.py` (the vendor's step) clones the current commit into a private
folder, runs the recipe there exactly as `reprover verify` will (the same command, the system
Python, `SOURCE_DATE_EPOCH` = the commit's committer time, no network, no build isolation),
copies the wheel and sdist into `dist/` and writes `dist/reprover.toml` pinned to that commit.
`reprover verify dist/reprover.toml` then rebuilds them in its sandbox and compares.

`python scripts/release.py --build OUT` is the recipe itself: it builds the current folder with
setuptools' PEP 517 hooks in this interpreter (no isolation, no downloads), then writes the
sdist again with every variable part fixed: members sorted, times = SOURCE_DATE_EPOCH, owner
root (0, no names), modes 0644/0755, the gzip header time = SOURCE_DATE_EPOCH and no file name
(setuptools takes file times from the checkout and the gzip time from the clock). The wheel is
already reproducible (`wheel` honours SOURCE_DATE_EPOCH and sorts its members).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"  # the toolchain the sandbox shows the build: the same for both
RECIPE = [PYTHON, "scripts/release.py", "--build", "out"]


def build(out: Path) -> list[Path]:
    """Build the current folder's wheel and sdist into `out`; return their paths."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch or not epoch.isdigit():
        sys.exit("release.py --build: SOURCE_DATE_EPOCH must be set (the commit time)")
    from setuptools import build_meta

    out.mkdir(parents=True, exist_ok=True)
    wheel = out / build_meta.build_wheel(str(out))
    sdist = out / build_meta.build_sdist(str(out))
    normalize_sdist(sdist, int(epoch))
    return [wheel, sdist]


def normalize_sdist(path: Path, epoch: int) -> None:
    """Rewrite a .tar.gz with every variable part fixed (see the module docstring)."""
    with tarfile.open(path, "r:gz") as src:
        members = sorted(src.getmembers(), key=lambda m: m.name)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as dst:
            for member in members:
                data = src.extractfile(member) if member.isfile() else None
                member.mtime = epoch
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                member.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
                member.pax_headers = {}
                dst.addfile(member, data)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=epoch, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(packed.getvalue())
    tmp.replace(path)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def release(dist: Path) -> None:
    """The vendor's step: build the current commit in a clean clone, write dist/."""
    commit = git("rev-parse", "HEAD")
    epoch = git("show", "-s", "--format=%ct", commit)
    with tempfile.TemporaryDirectory(prefix="reprover-release-") as tmp:
        checkout = Path(tmp) / "src"
        subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(checkout)], check=True)
        git("checkout", "-q", "--detach", commit, cwd=checkout)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "SOURCE_DATE_EPOCH": epoch,
        }
        os.umask(0o022)
        subprocess.run(RECIPE, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
        dist.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in (checkout / "out").iterdir())
        for name in names:
            shutil.copyfile(checkout / "out" / name, dist / name)
    manifest = "\n".join([
        "# Written by scripts/release.py: reprover's own release, rebuilt by `reprover verify`.",
        "[source]",
        f'repo = "{os.path.relpath(ROOT, dist.resolve())}"',
        f'commit = "{commit}"',
        "",
        "[build]",
        "command = [" + ", ".join(f'"{a}"' for a in RECIPE) + "]",
        'output = "out"',
        "timeout = 900",
        "",
        "[release]",
        'path = "."',
        'ignore = ["reprover.toml"]  # this manifest sits beside the artifacts it describes',
        "",
        *[f'[[artifact]]\npath = "{name}"\n' for name in names],
    ])  # fmt: skip
    target = dist / "reprover.toml"
    tmp_manifest = target.with_name(target.name + ".tmp")
    tmp_manifest.write_text(manifest)
    tmp_manifest.replace(target)
    print(f"dist: {', '.join(names)} and reprover.toml pinned to {commit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, metavar="OUT", help="the recipe: build into OUT")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where to release")
    args = parser.parse_args()
    if args.build is not None:
        for path in build(args.build):
            print(path.name)
    else:
        release(args.dist)


if __name__ == "__main__":
    main()
