"""Build the ledger fixtures: pairs of small binaries that differ the way real rebuilds do.

Each pair lands in tests/fixtures/ledger/<name>/ as `a` and `b` (the released and the rebuilt
file) with `ledger.json`, the golden ledger reprover computes for them. Pairs:

ELF (gcc):
  elf-date          same folder, -ffile-prefix-map, SOURCE_DATE_EPOCH differs: __DATE__ + build-id
  elf-prefix-map    two folders of different length, -ffile-prefix-map: identical
  elf-paths         the same two folders without -ffile-prefix-map: DWARF, __FILE__, shifted
PE (mingw-w64, GNU ld):
  pe-mingw-timestamp  one object linked at two SOURCE_DATE_EPOCHs: TimeDateStamp + CheckSum
  pe-mingw-notimestamp  the same with --no-insert-timestamp: identical
  pe-mingw-dwarf    freestanding with DWARF, two folders, --no-insert-timestamp: debug paths
PE (clang + lld-link, CodeView):
  pe-lld-codeview   two folders, two /timestamp values: timestamps, PDB GUID and path
  pe-lld-brepro     two folders with /Brepro: hash timestamps, GUID, PDB path
Mach-O (clang -target x86_64-apple-macos11 + ld64.lld, freestanding, -e _start, ad-hoc signed):
  macho-thin        objects built in two folders at two mtimes: N_OSO, LC_UUID, page hashes
  macho-fat         x86_64 + arm64 slices joined by llvm-lipo, built the same two ways

Run from the repository root: `.venv/bin/python scripts/make_ledger_fixtures.py`. Needs gcc,
x86_64-w64-mingw32-gcc, clang, lld-link and /usr/lib/llvm-14/bin/{ld64.lld,llvm-lipo}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "ledger"
SOURCES = FIXTURES / "src"
LLVM = Path("/usr/lib/llvm-14/bin")
MACOS = ["-platform_version", "macos", "11.0", "11.0", "-e", "_start", "-adhoc_codesign"]


def run(argv: list[str], cwd: Path, **env: str) -> None:
    """Run one build command, failing loudly."""
    full = {**os.environ, "LC_ALL": "C", **env}
    subprocess.run(argv, cwd=cwd, env=full, check=True)


def folders(tmp: Path) -> tuple[Path, Path]:
    """Two build folders whose paths differ in length, each with a copy of the sources."""
    one, two = tmp / "build", tmp / "a-longer-build-folder"
    for folder in (one, two):
        shutil.copytree(SOURCES, folder)
    return one, two


def elf(tmp: Path) -> dict[str, tuple[Path, Path]]:
    one, two = folders(tmp)
    flags = ["gcc", "-O1", "-g", "hello.c"]
    run([*flags, f"-ffile-prefix-map={one}=.", "-o", "date-a"], one, SOURCE_DATE_EPOCH="1700000000")
    run([*flags, f"-ffile-prefix-map={one}=.", "-o", "date-b"], one, SOURCE_DATE_EPOCH="1710000000")
    for folder in (one, two):
        run([*flags, f"-ffile-prefix-map={folder}=.", "-o", "map"], folder, SOURCE_DATE_EPOCH="1")
        run([*flags, "-o", "nomap"], folder, SOURCE_DATE_EPOCH="1")
    return {
        "elf-date": (one / "date-a", one / "date-b"),
        "elf-prefix-map": (one / "map", two / "map"),
        "elf-paths": (one / "nomap", two / "nomap"),
    }


def pe_mingw(tmp: Path) -> dict[str, tuple[Path, Path]]:
    one, two = folders(tmp)
    gcc = "x86_64-w64-mingw32-gcc"
    run([gcc, "-O1", "-c", "hello.c", "-o", "hello.o"], one, SOURCE_DATE_EPOCH="1")
    for name, epoch in (("ts-a.exe", "1700000000"), ("ts-b.exe", "1710000000")):
        run([gcc, "-s", "hello.o", "-o", name], one, SOURCE_DATE_EPOCH=epoch)
    for name, epoch in (("nots-a.exe", "1700000000"), ("nots-b.exe", "1710000000")):
        argv = [gcc, "-s", "-Wl,--no-insert-timestamp", "hello.o", "-o", name]
        run(argv, one, SOURCE_DATE_EPOCH=epoch)
    for folder in (one, two):
        run([gcc, "-O1", "-g", "-nostdlib", "-e", "start", "-Wl,--no-insert-timestamp",
             "free.c", "-o", "dwarf.exe"], folder)  # fmt: skip
    return {
        "pe-mingw-timestamp": (one / "ts-a.exe", one / "ts-b.exe"),
        "pe-mingw-notimestamp": (one / "nots-a.exe", one / "nots-b.exe"),
        "pe-mingw-dwarf": (one / "dwarf.exe", two / "dwarf.exe"),
    }


def pe_lld(tmp: Path) -> dict[str, tuple[Path, Path]]:
    one, two = folders(tmp)
    link = ["lld-link", "/entry:start", "/subsystem:console", "/nodefaultlib", "/debug"]
    for folder, stamp in ((one, "1700000000"), (two, "1710000000")):
        run(["clang", "--target=x86_64-pc-windows-msvc", "-O1", "-g", "-gcodeview", "-c",
             "free.c", "-o", "free.obj"], folder)  # fmt: skip
        run([*link, f"/timestamp:{stamp}", "/out:cv.exe", "free.obj"], folder)
        run([*link, "/Brepro", "/out:repro.exe", "free.obj"], folder)
    return {
        "pe-lld-codeview": (one / "cv.exe", two / "cv.exe"),
        "pe-lld-brepro": (one / "repro.exe", two / "repro.exe"),
    }


def macho(tmp: Path) -> dict[str, tuple[Path, Path]]:
    one, two = folders(tmp)
    for folder, mtime in ((one, 1700000000), (two, 1710000000)):
        for arch in ("x86_64", "arm64"):
            obj = f"free-{arch}.o"
            target = f"{arch}-apple-macos11"
            run(["clang", "-target", target, "-O1", "-g", "-c", "free.c", "-o", obj], folder)
            os.utime(folder / obj, (mtime, mtime))
            run([str(LLVM / "ld64.lld"), "-arch", arch, *MACOS, "-o", f"m-{arch}", obj], folder)
        run([str(LLVM / "llvm-lipo"), "-create", "m-x86_64", "m-arm64", "-output", "m-fat"], folder)
    return {
        "macho-thin": (one / "m-x86_64", two / "m-x86_64"),
        "macho-fat": (one / "m-fat", two / "m-fat"),
    }


def golden(a: Path, b: Path) -> dict[str, object]:
    """The ledger reprover computes for a pair, in the form the tests compare against."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ledger_helpers import as_json, ledger_of

    return as_json(ledger_of(a, b))


def write_golden(name: str) -> None:
    """(Re)write the golden ledger of one committed pair."""
    folder = FIXTURES / name
    data = golden(folder / "a", folder / "b")
    (folder / "ledger.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    """Build every pair (or, with --golden-only, only recompute the golden ledgers)."""
    if "--golden-only" not in argv:
        with tempfile.TemporaryDirectory(prefix="reprover-fixtures-") as tmp:
            base = Path(tmp)
            pairs: dict[str, tuple[Path, Path]] = {}
            for step in (elf, pe_mingw, pe_lld, macho):
                work = base / step.__name__
                work.mkdir()
                pairs.update(step(work))
            for name, (a, b) in pairs.items():
                folder = FIXTURES / name
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(a, folder / "a")
                shutil.copyfile(b, folder / "b")
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "a").exists()):
        write_golden(folder.name)
        print(folder.name, (folder / "a").stat().st_size, (folder / "b").stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
