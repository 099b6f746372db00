"""Real vendor files through sign-check and diff: a pinned corpus, a table for the README.

Downloads (never at test time) a pinned list of public wheels and Debian packages, each checked
against its sha256 (pip `--require-hashes`; the .deb by its digest), then for every signed PE
and Mach-O file inside:

1. makes its unsigned counterpart: `osslsigncode remove-signature` for PE; for Mach-O each slice
   re-signed the way ld64 signs a link (flags 0x20002, no requirements, no CMS wrapper) with
   `tests/macho_sign.py`, which is what a rebuild of the same code would carry;
2. runs `reprover sign-check COUNTERPART FILE` and `reprover diff FILE COUNTERPART --allow
   signature` (both must exit 0), timed;
3. flips one byte of executable code in the counterpart and runs sign-check again: it must exit 1
   with that byte in its ledger.

ELF files (Debian) go through `sign-check` (exit 2: no embedded signature) and `diff` with one
code byte flipped (exit 1, the byte located). Prints a Markdown table (file, signer, verdicts,
CPU seconds of the sign-check process, or of diff for ELF, interpreter start included) for the
README. The test suite covers the same cases offline with generated equivalents
(tests/fixtures/signature: `ms-style.exe`, `macho-codesign`, `macho-universal-*`, ...), since
Microsoft's runtime licence allows redistribution only with a licensed Visual Studio.

Run: .venv/bin/python scripts/realworld.py [--work DIR] [--max-files N] [--only PACKAGE ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import macho_sign  # noqa: E402 - test support: writes ld64-style signatures
from reprover.compare.signatures.macho_blobs import decode_code_directory  # noqa: E402
from reprover.compare.signatures.macho_layout import (  # noqa: E402
    fat_slices,
    is_fat,
    is_macho,
    slice_layout,
)
from reprover.compare.signatures.pe_certtable import read_layout  # noqa: E402


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel: pip requirement, platform tag and sha256 of the file."""

    name: str
    version: str
    platform: str
    sha256: str


@dataclass(frozen=True)
class Deb:
    """A pinned Debian package (bookworm)."""

    name: str
    version: str
    sha256: str


WHEELS = (
    Wheel("msvc-runtime", "14.51.36231", "win_amd64",
          "89f70d1a37bb64164cdb09d02dd82d6b1400e1310be2995b4ed5a9f23efe2222"),
    Wheel("debugpy", "1.8.22", "win_amd64",
          "371a4ba4a5975eb958393903f3254cf983da7b1c7c178b3f987ee427f42515e3"),
    Wheel("tbb", "2023.2.0", "win_amd64",
          "b39121cbdaff350fc61a448766cbb26807c523491d66e364838c9feeb3c6a0eb"),
    Wheel("intel-openmp", "2026.2.0", "win_amd64",
          "0fcd60701d6dcf8f17cd40c9733d7046ff3b82921a0a039bea2e6a68fb12c152"),
    Wheel("pyzmq", "27.3.0", "macosx_10_15_universal2",
          "15155fd8f308d3bd47f67a8f6cc809f9db90abbf63c514c384a17622e2cf080f"),
    Wheel("numpy", "2.5.5", "macosx_14_0_arm64",
          "a3856a97e48ed8371c680fb04120b99fbcc29f2076ebe6dc3deb34f77947c5ca"),
    Wheel("pillow", "13.0.0", "macosx_11_0_arm64",
          "fc481f742ccda20e9ed760b8f978dff50f2a4e9bc253ac167fb0a05b0783ef52"),
    Wheel("cryptography", "48.0.1", "macosx_10_9_universal2",
          "3e4a1a3232eef2e6c732827d5722db29a0cc8b27af2a4d865b094cf954be9ca1"),
)  # fmt: skip
DEBS = (Deb("hello", "2.10-3", "2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a"),)


@dataclass
class Row:
    """One line of the table."""

    file: str
    kind: str
    signer: str
    sign_check: str
    diff: str
    code_byte: str
    seconds: float


def cpu_seconds() -> float:
    """CPU time used so far by finished child processes (and theirs): stable on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reprover(*args: str | Path) -> tuple[int, dict[str, object], str]:
    """Run the real CLI; return (exit, JSON report or {}, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "reprover", *map(str, args), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        report = {}
    return done.returncode, report, done.stderr.strip().splitlines()[0] if done.stderr else ""


def download(work: Path, only: list[str]) -> list[Path]:
    """Fetch every pinned file (or those named in `only`) into `work/downloads`, by sha256."""
    out = work / "downloads"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for wheel in WHEELS:
        if only and wheel.name not in only:
            continue
        req = out / f"{wheel.name}.txt"
        req.write_text(f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", wheel.platform, "--python-version", "3.12", "--require-hashes",
             "-r", str(req), "-d", str(out)],
            check=True,
        )  # fmt: skip
        files.extend(p for p in out.glob("*.whl") if _sha256(p) == wheel.sha256)
    for deb in DEBS:
        if only and deb.name not in only:
            continue
        subprocess.run(["apt-get", "download", f"{deb.name}={deb.version}"], cwd=out, check=True)
        path = next(out.glob(f"{deb.name}_*.deb"))
        if _sha256(path) != deb.sha256:
            raise SystemExit(f"{path.name}: sha256 is not the pinned {deb.sha256}")
        files.append(path)
    return sorted(set(files))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract(archive: Path, dest: Path) -> list[Path]:
    """Every PE, Mach-O or ELF file inside a wheel or .deb."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        subprocess.run(["dpkg-deb", "-x", str(archive), str(dest)], check=True)
    found = []
    for path in sorted(dest.rglob("*")):
        if path.is_file() and not path.is_symlink():
            head = path.read_bytes()[:4]
            if head[:2] == b"MZ" or is_macho(head) or head == b"\x7fELF":
                found.append(path)
    return found


def signed_pe(data: bytes) -> bool:
    try:
        return read_layout(data, "f").signed
    except Exception:  # noqa: BLE001 - not a PE we can read: not in the corpus
        return False


def pe_counterpart(signed: Path, out: Path) -> None:
    out.unlink(missing_ok=True)  # osslsigncode does not overwrite
    subprocess.run(
        ["osslsigncode", "remove-signature", "-in", str(signed), "-out", str(out)],
        check=True,
        capture_output=True,
    )


def _linker_signed_slice(data: bytes) -> bytes:
    layout = slice_layout(data, "slice")
    if layout.dataoff < 0:
        return data  # an unsigned slice of a universal file is its own counterpart
    superblob = data[layout.dataoff :]
    _, rel = struct.unpack_from(">II", superblob, 12)
    length = struct.unpack_from(">I", superblob, rel + 4)[0]
    cd = decode_code_directory(superblob[rel : rel + length], 0, "cd")
    seg = cd.exec_seg or (0, 0, 0)
    return macho_sign.sign(
        data, identifier=cd.identifier, flags=0x20002, requirements=None, cms=False,
        page_log=cd.page_size.bit_length() - 1, exec_seg=(seg[0], seg[1]), exec_seg_flags=seg[2],
    )  # fmt: skip


def macho_counterpart(signed: Path, out: Path) -> None:
    data = signed.read_bytes()
    if is_fat(data):
        slices = [
            ((cpu, sub), _linker_signed_slice(data[off : off + size]))
            for cpu, sub, off, size in fat_slices(data, "fat")
        ]
        out.write_bytes(macho_sign.fat(slices))
    else:
        out.write_bytes(_linker_signed_slice(data))


def code_offset(path: Path) -> int:
    """A file offset inside executable code (LIEF, run here on our own corpus)."""
    import lief

    lief.logging.disable()
    data = path.read_bytes()
    if data[:2] == b"MZ":
        pe = lief.PE.parse(str(path))
        text = next(
            s
            for s in pe.sections
            if s.has_characteristic(lief.PE.Section.CHARACTERISTICS.MEM_EXECUTE)
        )
        return int(text.offset) + min(int(text.size), int(text.virtual_size)) // 2
    if data[:4] == b"\x7fELF":
        elf = lief.ELF.parse(str(path))
        text = elf.get_section(".text")
        return int(text.offset) + int(text.size) // 2
    fat = lief.MachO.parse(str(path))
    binary = fat.at(0)
    text = binary.get_section("__text")
    base = fat_slices(data, "fat")[0][2] if is_fat(data) else 0
    return base + int(text.offset) + int(text.size) // 2


def flipped(path: Path, out: Path) -> int:
    at = code_offset(path)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    out.write_bytes(bytes(data))
    return at


def _signer(report: dict[str, object]) -> str:
    """Every signer's CN (nested ones after a `+`), or `ad-hoc` for Mach-O."""
    checks = report.get("checks") or []
    findings = [str(f) for f in checks[0].get("findings", [])] if checks else []  # type: ignore[union-attr]
    names = [
        f.split(": subject ", 1)[1].split(",")[0].removeprefix("CN=")
        for f in findings
        if ": subject " in f
    ]
    if names:
        return " + ".join(names)
    who = {f.split("signer: ", 1)[1] for f in findings if "signer: " in f}
    return "ad-hoc" if all(w.startswith("ad-hoc") for w in who) else "; ".join(sorted(who))[:100]


def _located(report: dict[str, object], at: int) -> bool:
    for artifact in report.get("artifacts", []):  # type: ignore[union-attr]
        for d in artifact.get("differences", []):
            if d["offset"] <= at < d["offset"] + max(d["length"], 1) and not d.get("allowed"):
                return True
    return False


def check_signed(path: Path, kind: str, tmp: Path, label: str) -> Row:
    counterpart = tmp / f"unsigned-{path.name}"
    (pe_counterpart if kind == "PE" else macho_counterpart)(path, counterpart)
    start = cpu_seconds()
    code, report, err = reprover("sign-check", counterpart, path)
    seconds = cpu_seconds() - start
    diff_code, _, _ = reprover("diff", path, counterpart, "--allow", "signature")
    mutant = tmp / f"mutant-{path.name}"
    at = flipped(counterpart, mutant)
    bad_code, bad_report, _ = reprover("sign-check", mutant, path)
    caught = "yes" if bad_code == 1 and _located(bad_report, at) else f"NO (exit {bad_code})"
    reason = err.removeprefix("reprover: sign-check: ").removeprefix("released file: ")
    verdict = "signature-only" if code == 0 else f"exit {code}: {reason.split(' (')[0][:90]}"
    return Row(label, kind, _signer(report) if code == 0 else "-", verdict,
               f"exit {diff_code}", caught, seconds)  # fmt: skip


def check_elf(path: Path, tmp: Path, label: str) -> Row:
    code, _, _ = reprover("sign-check", path, path)
    mutant = tmp / f"mutant-{path.name}"
    at = flipped(path, mutant)
    start = cpu_seconds()
    diff_code, report, _ = reprover("diff", path, mutant)
    seconds = cpu_seconds() - start
    caught = "yes" if diff_code == 1 and _located(report, at) else f"NO (exit {diff_code})"
    return Row(label, "ELF", "-", f"exit {code} (no embedded signature)", "-", caught, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="keep downloads and files here")
    parser.add_argument("--max-files", type=int, default=3, help="signed files per package")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="packages")
    args = parser.parse_args()
    for tool in ("osslsigncode", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing tool: {tool}")
    work = args.work or Path(tempfile.mkdtemp(prefix="reprover-realworld-"))
    rows: list[Row] = []
    for archive in download(work, args.only):
        files = extract(archive, work / "x" / archive.stem)
        done = 0
        seen: set[str] = set()
        for path in sorted(files, key=_preference):
            if done >= args.max_files:
                break
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:  # the same file shipped twice (msvc-runtime: data/ and Scripts/)
                continue
            seen.add(digest)
            label = f"{archive.name.split('-')[0].split('_')[0]}: {path.name}"
            tmp = work / "t" / archive.stem
            tmp.mkdir(parents=True, exist_ok=True)
            if data[:2] == b"MZ" and signed_pe(data):
                rows.append(check_signed(path, "PE", tmp, label))
            elif is_macho(data[:4]) and _macho_signed(data):
                kind = f"Mach-O{' fat' if is_fat(data) else ''}, {macho_style(data)}"
                rows.append(check_signed(path, kind, tmp, label))
            elif data[:4] == b"\x7fELF":
                rows.append(check_elf(path, tmp, label))
            else:
                continue
            done += 1
            print(_line(rows[-1]), file=sys.stderr, flush=True)
    print("| file | format | signer | sign-check | diff --allow signature | code byte | CPU |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(_line(row))


def macho_style(data: bytes) -> str:
    """How a Mach-O is signed: `linker` (ld64: one CodeDirectory), `codesign` (more blobs)."""
    styles = set()
    slices = [(o, n) for _, _, o, n in fat_slices(data, "f")] if is_fat(data) else [(0, len(data))]
    for offset, size in slices:
        part = data[offset : offset + size]
        layout = slice_layout(part, "s")
        if layout.dataoff >= 0:
            count = struct.unpack_from(">I", part, layout.dataoff + 8)[0]
            styles.add("codesign -s -" if count > 1 else "linker-signed")
    return " + ".join(sorted(styles))


def _macho_signed(data: bytes) -> bool:
    try:
        if is_fat(data):
            return any(
                slice_layout(data[o : o + s], "s").dataoff >= 0
                for _, _, o, s in fat_slices(data, "f")
            )
        return slice_layout(data, "s").dataoff >= 0
    except Exception:  # noqa: BLE001 - not a layout we read: not in the corpus
        return False


def _preference(path: Path) -> tuple[bool, int]:
    """codesign-signed Mach-O files first (the harder case), then the smallest."""
    data = path.read_bytes()
    codesign = is_macho(data[:4]) and _macho_signed(data) and "codesign" in macho_style(data)
    return (not codesign, len(data))


def _line(row: Row) -> str:
    return (
        f"| {row.file} | {row.kind} | {row.signer} | {row.sign_check} | {row.diff} | "
        f"{'caught, byte located' if row.code_byte == 'yes' else row.code_byte} | "
        f"{row.seconds:.2f} s |"
    )


if __name__ == "__main__":
    main()
