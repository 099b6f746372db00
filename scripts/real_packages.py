"""Real packages layer by layer: a pinned corpus through `reprover diff`, a table for the README.

Fetches (never at test time) a pinned list of Debian packages, wheels, sdists and npm tarballs
into a cache (`--cache`, default ~/.cache/reprover/real-packages), each checked against its
sha256, then runs the checks of tests/test_archive_real.py on every one through the real CLI:

1. the package against a copy of itself: exit 0;
2. against a repack by its format's tool with only the times changed (dpkg-deb with another
   SOURCE_DATE_EPOCH; zipfile or tarfile keeping order and fields; npm's own node-tar for npm
   tarballs): exit 1, and exit 0 with `--allow archive.mtime`;
3. against a repack with one byte of code changed (the first ELF or PE member's code section, at
   any depth; else a Java class inside a jar inside the package; else the first member): exit 1
   with every archive rule allowed, the member named and the ELF/PE region of the byte reported;
4. against a copy with bytes between two members: exit 1 with an `archive.hidden` difference;
5. when it holds signed PE files: `reprover sign-check` of the package repacked with every one
   unsigned (nothing else changed) against the package: exit 0, signature-only.

Prints a Markdown table (package, size, each check, CPU seconds of the changed-byte
diff, interpreter start included). The small packages of tests/fixtures/real-packages are part of
the corpus too.

Run: .venv/bin/python scripts/real_packages.py [--cache DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import package_variants as rp  # noqa: E402 - test support: the variants of a package

ARCHIVE_RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode",
                 "archive.compression")  # fmt: skip
NODE_TAR = Path("/usr/lib/node_modules/npm/node_modules/tar")


@dataclass(frozen=True)
class Pkg:
    """A pinned package: registry (`deb`, `wheel`, `sdist`, `npm`), name, version, sha256, file."""

    registry: str
    name: str
    version: str
    sha256: str
    platform: str = ""


CORPUS = (
    Pkg("deb", "hello", "2.10-3",
        "2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a"),
    Pkg("deb", "libzstd1", "1.5.4+dfsg2-5+deb12u1",
        "67dc1ee693e5c22b1a2be2bb70d8244b040836ce3f5dd79e006f7806bc3d9f1c"),
    Pkg("deb", "zstd", "1.5.4+dfsg2-5+deb12u1",
        "59fd093988b4b7f17cb10329ce6dd080ace367cd3b7928d6145012cb7fc3a334"),
    Pkg("deb", "libjpeg62-turbo", "1:2.1.5-2",
        "95ec30140789a342add8f8371ed018924de51b539056522b66f207b25cba9cad"),
    Pkg("deb", "libexpat1", "2.5.0-1+deb12u5",
        "cae5ded666d8573dd33060bc66fbac21eea8b101a6b56e2af8bd590fcfa65d79"),
    Pkg("deb", "libjna-jni", "5.13.0-2",
        "d5b384c75aad597509307308055302ded15227c00f778c46b0b5294800feddd1"),
    Pkg("deb", "libcommons-lang3-java", "3.12.0-2+deb12u1",
        "31158520a32d4d5eb8b581a1c6dfc5a9980747383d2e33283abec367eab1e812"),
    Pkg("deb", "libzstd-jni-java", "1.5.2-5+ds-3",
        "79e510009189c3f24d7b6b20b8e7411ef195c5d79e88514729e227a0127b6131"),
    Pkg("deb", "grub-efi-amd64-signed", "1+2.06+13+deb12u2",
        "fbe2b28166a6dca8111bbf6a30d52d4781973c3a0440d8080f901e039b1f83f2"),
    Pkg("deb", "python3-typeshed", "0.0~git20221107.4f381af-1",
        "4560bffefd5a23bf3a5a742bca32ffef1901034ecf81baf8c9d483d95375ecbf"),
    Pkg("deb", "fonts-dejavu-core", "2.37-6",
        "8892669e51aab4dc56682c8e39d8ddb7d70fad83c369344e1e240bf3ca22bb76"),
    Pkg("wheel", "pip", "26.3",
        "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13"),
    Pkg("wheel", "setuptools", "69.5.1",
        "c636ac361bc47580504644275c9ad802c50415c7522212252c033bd15f301f32"),
    Pkg("wheel", "attrs", "24.2.0",
        "81921eb96de3191c8258c199618104dd27ac608d9366f5e35d011eae1867ede2"),
    Pkg("wheel", "idna", "3.10",
        "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3"),
    Pkg("wheel", "rpds-py", "0.22.3",
        "e67ba3c290821343c192f7eae1d8fd5999ca2dc99994114643e2f2d3e6138b15", "manylinux2014_x86_64"),
    Pkg("wheel", "msvc-runtime", "14.51.36231",
        "89f70d1a37bb64164cdb09d02dd82d6b1400e1310be2995b4ed5a9f23efe2222", "win_amd64"),
    Pkg("sdist", "attrs", "24.2.0",
        "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346"),
    Pkg("sdist", "idna", "3.10",
        "12f65c9b470abda6dc35cf8e63cc574b1c52b11df2c86030af0ac09b01b13ea9"),
    Pkg("npm", "semver", "7.6.3",
        "376d2ca2c941fc5a37e9ac3ec65302e5e421e2cc1ee3dee57a854d2bd9bee125"),
    Pkg("npm", "left-pad", "1.3.0",
        "870c0fe1096223a58d4f8832d08a7e651ea2fcadb8e6877b2fdc26b662d481dd"),
)  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(pkg: Pkg, cache: Path) -> Path:
    """The package's file in `cache`, downloaded by its registry's client if not there yet."""
    folder = cache / pkg.registry / f"{pkg.name}-{pkg.version}"
    folder.mkdir(parents=True, exist_ok=True)
    found = [p for p in folder.iterdir() if p.is_file() and _sha256(p) == pkg.sha256]
    if found:
        return found[0]
    if pkg.registry == "deb":
        cmd = ["apt-get", "download", f"{pkg.name}={pkg.version}"]
    elif pkg.registry == "npm":
        cmd = ["npm", "pack", "--silent", f"{pkg.name}@{pkg.version}"]
    else:
        req = folder / "requirement.txt"
        req.write_text(f"{pkg.name}=={pkg.version} --hash=sha256:{pkg.sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
               "-r", str(req), "-d", str(folder)]  # fmt: skip
        if pkg.registry == "wheel":
            cmd.append("--only-binary=:all:")
            if pkg.platform:
                cmd += ["--platform", pkg.platform, "--python-version", "3.12"]
        else:
            cmd.append("--no-binary=:all:")
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    found = [p for p in folder.iterdir() if p.is_file() and _sha256(p) == pkg.sha256]
    if not found:
        raise SystemExit(f"{pkg.name} {pkg.version}: no download has the pinned sha256")
    return found[0]


def cpu_seconds() -> float:
    """CPU time used so far by finished child processes: stable on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def diff(a: Path, b: Path, *allow: str) -> tuple[int, dict[str, object]]:
    """`reprover diff a b` with `allow` rules; (exit code, JSON report or {})."""
    args = [f"--allow={r}" for r in allow]
    cmd = [sys.executable, "-m", "reprover", "diff", str(a), str(b), *args, "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, {}


def diff_signed(unsigned: Path, released: Path) -> tuple[int, dict[str, object]]:
    """`reprover sign-check unsigned released`; (exit code, JSON report or {})."""
    cmd = [sys.executable, "-m", "reprover", "sign-check", str(unsigned), str(released),
           "--format", "json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, {}


def _artifacts(report: dict[str, object]) -> list[dict[str, object]]:
    return list(report.get("artifacts", []))  # type: ignore[call-overload]


def repack_npm_times(src: Path, out: Path, work: Path) -> Path:
    """An npm tarball packed again by npm's own node-tar (as `npm pack` does), times earlier."""
    tree = work / "npm-tree"
    names: list[str] = []
    with tarfile.open(src, "r:gz") as t:
        for member in t.getmembers():
            if member.isfile():
                t.extract(member, tree, filter="data")
                names.append(member.name)
        mtime = t.getmembers()[0].mtime - rp.SHIFT
    script = (
        "const tar = require(process.argv[1]);"
        "const [cwd, file, mtime, ...files] = process.argv.slice(2);"
        "tar.c({cwd, file, sync: true, portable: true, gzip: {level: 9}, noDirRecurse: true,"
        " mtime: new Date(Number(mtime) * 1000)}, files);"
    )
    subprocess.run(["node", "-e", script, str(NODE_TAR), str(tree), str(out), str(mtime), *names],
                   check=True, capture_output=True)  # fmt: skip
    return out


def _fresh(work: Path, step: str, name: str) -> Path:
    (work / step).mkdir()
    return work / step / name


def identical_cell(path: Path, work: Path) -> str:
    """The package against a copy of itself."""
    same = _fresh(work, "same", path.name)
    shutil.copyfile(path, same)
    code, _ = diff(path, same)
    return "yes" if code == 0 else f"NO (exit {code})"


def times_cell(path: Path, work: Path) -> str:
    """The package against its repack with other times."""
    times = _fresh(work, "times", path.name)
    if path.name.endswith(".tgz"):
        if not NODE_TAR.is_dir():
            return "- (no node-tar)"
        repack_npm_times(path, times, work)
    else:
        rp.repack_times(path, times, work)
    plain, _ = diff(path, times)
    allowed, report = diff(path, times, "archive.mtime")
    recompressed, _ = diff(path, times, "archive.mtime", "archive.compression")
    if plain == 1 and allowed == 0:
        return "only archive.mtime"
    if plain == 1 and recompressed == 0:  # the vendor's compressor is not the repacking one
        return "archive.mtime + archive.compression"
    left = sorted({str(d["region"]) for a in _artifacts(report)
                   for d in a["differences"] if not d["allowed"]})  # type: ignore[attr-defined]  # fmt: skip
    return f"exit {plain}/{allowed}: {', '.join(left[:3])}"


def flip_cell(path: Path, work: Path) -> tuple[str, float]:
    """The package against its repack with one code byte changed; and the diff's CPU seconds."""
    flipped = _fresh(work, "flip", path.name)
    flip = rp.flip_code(path, flipped, work / "flip")
    start = cpu_seconds()
    code, report = diff(path, flipped, *ARCHIVE_RULES)
    seconds = cpu_seconds() - start
    leaf = [a for a in _artifacts(report) if a["path"] == flip.member]
    regions = {d["region"] for a in leaf for d in a["differences"] if not d["allowed"]}  # type: ignore[attr-defined]
    named = code == 1 and leaf and (flip.region is None or flip.region in regions)
    where = flip.member.removeprefix(path.name)
    return f"{'caught' if named else f'NO (exit {code})'}: `{where}` {flip.region or ''}", seconds


def hidden_cell(path: Path, work: Path) -> str:
    """The package against a copy with bytes between two members."""
    hidden = _fresh(work, "hidden", path.name)
    layer = rp.hide_bytes(path, hidden, work)
    code, report = diff(path, hidden, *ARCHIVE_RULES)
    found = any(d["kind"] == "hidden" and not d["allowed"] for a in _artifacts(report)
                if a["path"] == layer for d in a["differences"])  # type: ignore[attr-defined]  # fmt: skip
    return "caught" if code == 1 and found else f"NO (exit {code})"


def sign_cell(path: Path, work: Path) -> str:
    """sign-check of the package with its signed PE files unsigned against the package."""
    unsigned = _fresh(work, "unsigned", path.name)
    signed = rp.strip_signatures(path, unsigned, work / "unsigned")
    if not signed:
        return "-"
    code, report = diff_signed(unsigned, path)
    verdicts = {str(a["verdict"]) for a in _artifacts(report)}
    proven = code == 0 and "different" not in verdicts
    return f"{signed} signed PE: {'signature-only' if proven else f'NO (exit {code})'}"


def check(path: Path, work: Path) -> list[str]:
    """The table cells of one package."""
    flip, seconds = flip_cell(path, work)
    size = f"{path.stat().st_size / 1e6:.2f} MB"
    return [path.name, size, identical_cell(path, work), times_cell(path, work), flip,
            hidden_cell(path, work), sign_cell(path, work), f"{seconds:.1f} s"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "reprover" / "real-packages")  # fmt: skip
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    for tool in ("dpkg-deb", "apt-get", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing tool: {tool}")
    paths = [fetch(p, args.cache) for p in CORPUS if not args.only or p.name in args.only]
    paths += [p for p in sorted(rp.FIXTURES.iterdir()) if p.name != "README.md"
              and (not args.only or any(p.name.startswith(n) for n in args.only))]  # fmt: skip
    header = ["package", "size", "vs itself", "times repacked",
              "one code byte changed (member, region)", "hidden bytes",
              "sign-check vs unsigned", "CPU"]  # fmt: skip
    rows = []
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="reprover-real-") as tmp:
            rows.append(check(path, Path(tmp)))
        print("| " + " | ".join(rows[-1]) + " |", file=sys.stderr, flush=True)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
