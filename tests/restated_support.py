"""Packages whose RECORD or md5sums restate a signed PE's digest, made with real tools.

- `pe_pair`: a PE (a real MinGW-built .pyd of markupsafe's wheel, or the 4 KiB fixture) and
  the same PE signed by osslsigncode;
- `rewheel`: a wheel rewritten by zipfile keeping every entry's fields and order, members
  replaced and each replaced member's RECORD line written as bdist_wheel writes it (csv,
  `sha256=` urlsafe base64 without padding, size), then RECORD passed through `edit`;
- `build_deb`: a .deb made by dpkg-deb from a small tree holding the PE, its DEBIAN/md5sums
  written as dh_md5sums writes it, then passed through `edit`.

`edit` is where the adversarial tests forge the restating member.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

from package_variants import FIXTURES, _copy_info
from signature_support import fx, osslsign

WHEEL = FIXTURES / "markupsafe-3.0.4-cp312-cp312-win_amd64.whl"
PYD = "markupsafe/_speedups.cp312-win_amd64.pyd"
RECORD = "markupsafe-3.0.4.dist-info/RECORD"
DLL = "usr/lib/engine/engine.dll"
EPOCH = 1_700_000_000

Edit = Callable[[bytes], bytes]


def _same(data: bytes) -> bytes:
    return data


def sign(pe: bytes, work: Path, name: str = "pe") -> bytes:
    """`pe` signed by osslsigncode with the fixture key `leaf`."""
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{name}.in").write_bytes(pe)
    osslsign(work / f"{name}.in", work / f"{name}.out", "leaf")
    return (work / f"{name}.out").read_bytes()


def pyd() -> bytes:
    """The real .pyd of markupsafe's Windows wheel (unsigned as published)."""
    with zipfile.ZipFile(WHEEL) as z:
        return z.read(PYD)


def record_line(path: str, data: bytes, end: str = "\n") -> bytes:
    """A RECORD row as bdist_wheel writes it (`end` CR LF: as csv's default, auditwheel's)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    out = io.StringIO()
    csv.writer(out, lineterminator=end).writerow([path, f"sha256={digest}", len(data)])
    return out.getvalue().encode()


def rewheel(out: Path, members: dict[str, bytes], edit: Edit = _same, src: Path = WHEEL) -> Path:
    """`src` with `members` replaced and their RECORD rows restated, RECORD then `edit`ed."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        lines = zin.read(record_name).splitlines(keepends=True)
        for name, data in members.items():
            at = next(i for i, ln in enumerate(lines) if ln.startswith(name.encode() + b","))
            lines[at] = record_line(name, data, _end(lines[at]))
        record = edit(b"".join(lines))
        for info in zin.infolist():
            data = record if info.filename == record_name else zin.read(info)
            zout.writestr(_copy_info(info, info.date_time), members.get(info.filename, data))
    return out


def _end(record: bytes) -> str:
    return "\r\n" if record.split(b"\n", 1)[0].endswith(b"\r") else "\n"


def md5_line(path: str, data: bytes) -> bytes:
    """An md5sums line as dh_md5sums (md5sum) writes it."""
    return f"{hashlib.md5(data).hexdigest()}  {path}\n".encode()  # noqa: S324 - Debian's


def build_deb(out: Path, work: Path, dll: bytes, edit: Edit = _same,
              files: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    """A .deb (dpkg-deb, xz, SOURCE_DATE_EPOCH fixed) holding `dll` at `DLL` and `files`."""
    tree = work / f"{out.name}.tree"
    shipped = {DLL: dll, "usr/share/doc/engine/README": b"engine\n", **(files or {})}
    for name, data in shipped.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: engine\nVersion: 1.0\nArchitecture: all\nMaintainer: Vendor <v@example.org>\n"
        "Description: engine\n"
    )
    md5sums = b"".join(md5_line(n, d) for n, d in sorted(shipped.items()))
    (tree / "DEBIAN" / "md5sums").write_bytes(edit(md5sums))
    for path in tree.rglob("*"):
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    owners = [] if os.geteuid() == 0 else ["--root-owner-group"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    subprocess.run(["dpkg-deb", *owners, "-Zxz", "--build", str(tree), str(out)], env=env,
                   check=True, capture_output=True)  # fmt: skip
    return out


def with_member(src: Path, out: Path, name: str, data: bytes) -> Path:
    """`src` with one more member `name` (before RECORD) and its RECORD row."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            content = zin.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                added = zipfile.ZipInfo(name, info.date_time)
                added.compress_type, added.external_attr = info.compress_type, info.external_attr
                zout.writestr(added, data)
                content += record_line(name, data, _end(content))
            zout.writestr(_copy_info(info, info.date_time), content)
    return out


def small_pe() -> bytes:
    """The 4 KiB unsigned PE fixture."""
    return fx("unsigned.exe").read_bytes()


MSI_DLL = Path(__file__).parent / "fixtures" / "ledger" / "pe-mingw-timestamp" / "a"


def build_msis(folder: Path, released_dll: bytes, query: str | None = None) -> tuple[Path, Path]:
    """(released, rebuilt): wixl MSIs holding engine.dll in product.cab; the rebuilt one with
    `MSI_DLL`, the released one with `released_dll`, its summary pinned to the rebuilt's,
    `query` run on its tables by msibuild (msitools) and the MSI signed by osslsigncode."""
    from archive_support import pin_summary, sign_msi, write_msi

    for sub in ("reb", "unsigned", "rel"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rebuilt = write_msi(folder / "reb" / "setup.msi", MSI_DLL.read_bytes())
    unsigned = pin_summary(write_msi(folder / "unsigned" / "setup.msi", released_dll), rebuilt)
    if query is not None:
        subprocess.run(["msibuild", str(unsigned), "-q", query], check=True, capture_output=True)
    return sign_msi(unsigned, folder / "rel" / "setup.msi"), rebuilt


def msi_table(msi: Path, table: str) -> list[list[str]]:
    """A table's rows as msiinfo (msitools, the oracle) exports them."""
    out = subprocess.run(["msiinfo", "export", str(msi), table], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return [line.split("\t") for line in out.splitlines()[3:]]


def hand_deb(out: Path, work: Path, data: dict[str, bytes], md5sums: bytes) -> Path:
    """A .deb assembled by GNU ar (deterministic) from tars Python's tarfile writes, so that
    its data tar may hold what dpkg-deb never writes (two spellings of one path)."""
    import lzma
    import tarfile

    def tar(files: dict[str, bytes]) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(content), EPOCH, 0o644
                t.addfile(info, io.BytesIO(content))
        return lzma.compress(raw.getvalue())

    folder = work / f"{out.name}.parts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "debian-binary").write_bytes(b"2.0\n")
    (folder / "control.tar.xz").write_bytes(tar({"./control": b"Package: engine\n",
                                                 "./md5sums": md5sums}))  # fmt: skip
    (folder / "data.tar.xz").write_bytes(tar(data))
    out.unlink(missing_ok=True)
    subprocess.run(["ar", "rcD", str(out.resolve()), "debian-binary", "control.tar.xz",
                    "data.tar.xz"], cwd=folder, check=True, capture_output=True)  # fmt: skip
    return out
