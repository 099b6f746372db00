"""Builders of real archives for the archive tests (stdlib zipfile/tarfile, real tools).

Every builder writes deterministic bytes from its arguments, so a test changes one thing
(a time, a mode, a byte of content) between the released and the rebuilt archive.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
FILES = {
    "pkg/__init__.py": b"VERSION = '1.0'\n",
    "pkg/core.py": b"def run():\n    return 42\n" * 40,
}
DATE = (2024, 1, 2, 3, 4, 6)

Entry = tuple[str, bytes]


def write_zip(
    path: Path,
    files: dict[str, bytes] | Sequence[Entry] | None = None,
    *,
    date: tuple[int, int, int, int, int, int] = DATE,
    mode: int = 0o644,
    method: int = zipfile.ZIP_DEFLATED,
    comment: bytes = b"",
    between: bytes = b"",
) -> Path:
    """A ZIP of `files` (in order); `between` is written after each member's data (hidden)."""
    files = FILES if files is None else files
    items = list(files.items()) if isinstance(files, dict) else list(files)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in items:
            info = zipfile.ZipInfo(name, date)
            info.external_attr = mode << 16
            info.create_system = 3
            info.compress_type = method
            z.writestr(info, data)
            if between:
                z.fp.write(between)  # type: ignore[union-attr]
                z.start_dir = z.fp.tell()  # type: ignore[union-attr]
        z.comment = comment
    return path


def write_tar(
    path: Path,
    files: dict[str, bytes] | Sequence[Entry] | None = None,
    *,
    mtime: int = 1_700_000_000,
    mode: int = 0o644,
    uid: int = 0,
    compression: str = "",
    fmt: int = tarfile.PAX_FORMAT,
) -> Path:
    """A TAR of `files` (in order), optionally compressed (`gz`, `xz`, `bz2`, or `zst`)."""
    files = FILES if files is None else files
    items = list(files.items()) if isinstance(files, dict) else list(files)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), mtime, mode, uid, 0
            info.uname = info.gname = "root" if uid == 0 else "builder"
            tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if compression == "gz":
        import gzip

        data = gzip.compress(data, mtime=mtime)
    elif compression == "xz":
        import lzma

        data = lzma.compress(data)
    elif compression == "bz2":
        import bz2

        data = bz2.compress(data)
    elif compression == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def zip_eocd(data: bytes) -> int:
    """Offset of the end-of-central-directory record."""
    return data.rindex(b"PK\x05\x06")


def patch_local_name(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rename a member in its local header only (same length): the central directory disagrees."""
    at = data.index(b"PK\x03\x04")
    while data[at + 30 : at + 30 + len(old)] != old:
        at = data.index(b"PK\x03\x04", at + 4)
    assert len(old) == len(new)
    return data[: at + 30] + new + data[at + 30 + len(old) :]


def add_overlapping_entry(data: bytes, name: bytes, alias: bytes) -> bytes:
    """Copy the central-directory entry of `name` under `alias`: two entries, one local header."""
    eocd = zip_eocd(data)
    _, _, _, count, cd_size, cd_offset = struct.unpack_from("<HHHHII", data, eocd + 4)
    cd = data[cd_offset : cd_offset + cd_size]
    at = 0
    while True:
        nlen, xlen, clen = struct.unpack_from("<HHH", cd, at + 28)
        if cd[at + 46 : at + 46 + nlen] == name:
            break
        at += 46 + nlen + xlen + clen
    entry = cd[at : at + 46 + nlen + xlen + clen]
    copy = entry[:28] + struct.pack("<H", len(alias)) + entry[30:46] + alias + entry[46 + nlen :]
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, count + 1, count + 1, cd_size + len(copy), cd_offset)
    return data[:cd_offset] + cd + copy + bytes(tail)


def report(run_cli: Callable[..., tuple[int, str, str]], *argv: str | Path) -> tuple[int, Any]:
    """Run the CLI with `--format json`; return (exit code, the report)."""
    code, out, err = run_cli(*argv, "--format", "json")
    assert out, err
    return code, json.loads(out)


def artifact(rep: Any, path: str) -> Any:
    """The artifact named `path` in a JSON report."""
    found = [a for a in rep["artifacts"] if a["path"] == path]
    assert found, [a["path"] for a in rep["artifacts"]]
    return found[0]


def regions(art: Any) -> dict[str, Any]:
    """The differences of an artifact by region."""
    return {d["region"]: d for d in art["differences"]}


WXS = """<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="12345678-1234-1234-1234-123456789012" Name="Engine" Language="1033"
           Version="1.0.0" Manufacturer="Vendor" UpgradeCode="12345678-1234-1234-1234-123456789013">
    <Package InstallerVersion="200" Compressed="yes" Comments="engine"/>
    <Media Id="1" Cabinet="product.cab" EmbedCab="yes"/>{binary}
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="Engine">
          <Component Id="Main" Guid="12345678-1234-1234-1234-123456789015">
            <File Id="engine.dll" Name="engine.dll" Source="engine.dll" KeyPath="yes"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Complete" Level="1"><ComponentRef Id="Main"/></Feature>
  </Product>
</Wix>
"""


def write_msi(path: Path, dll: bytes, *, helper: bytes | None = None) -> Path:
    """An MSI made by wixl holding `dll` as engine.dll in its embedded cabinet product.cab,
    and with `helper` a custom-action DLL in its `Binary` table (stream `Binary.helper`).

    The input files' times are fixed (the cabinet records engine.dll's), so two builds of
    the same files differ only by the summary wixl writes anew (see `pin_summary`)."""
    import os
    import subprocess
    import tempfile

    binary = ""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "engine.dll").write_bytes(dll)
        os.utime(Path(tmp) / "engine.dll", (1_700_000_000, 1_700_000_000))
        if helper is not None:
            (Path(tmp) / "helper.dll").write_bytes(helper)
            binary = '\n    <Binary Id="helper" SourceFile="helper.dll"/>'
        (Path(tmp) / "setup.wxs").write_text(WXS.format(binary=binary))
        subprocess.run(["wixl", "-o", str(path.resolve()), "setup.wxs"], cwd=tmp, check=True,
                       capture_output=True)  # fmt: skip
    return path


def pin_summary(msi: Path, like: Path) -> Path:
    """Overwrite `msi`'s summary stream, in place, with `like`'s (the same length).

    wixl writes a random package code (`msi.summary.revision`) and the current time on every
    build, and ignores `<Package Id>`: this makes two builds share them, so they differ only
    where their inputs do.
    """
    import olefile

    from reprover.compare.archives.olesummary import NAME

    with olefile.OleFileIO(str(like)) as ole:
        summary = ole.openstream(NAME).read()
    with olefile.OleFileIO(str(msi), write_mode=True) as ole:
        assert ole.get_size(NAME) == len(summary)
        ole.write_stream(NAME, summary)
    return msi


def msi_with_helper(
    folder: Path,
    rebuilt: Path,
    engine: bytes,
    helper: bytes,
    *,
    signer: str = "leaf",
    dse: bool = False,
) -> Path:
    """The vendor's release flow: `helper` (a custom-action DLL, usually signed already) packed
    into the `Binary` table of a wixl MSI whose summary is `rebuilt`'s (`pin_summary`), then the
    MSI signed (`sign_msi`); written to `folder`/setup.msi."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "unsigned").mkdir(exist_ok=True)
    unsigned = write_msi(folder / "unsigned" / "setup.msi", engine, helper=helper)
    return sign_msi(pin_summary(unsigned, rebuilt), folder / "setup.msi", signer=signer, dse=dse)


def flip_code_byte(pe: bytes, at: int = 16) -> bytes:
    """`pe` with one byte of its first executable section changed (a backdoor stand-in)."""
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    sections, opt = (
        struct.unpack_from("<H", pe, lfanew + 6)[0],
        struct.unpack_from("<H", pe, lfanew + 20)[0],
    )
    table = lfanew + 24 + opt
    for i in range(sections):
        raw_size, raw_ptr = struct.unpack_from("<II", pe, table + 40 * i + 16)
        flags = struct.unpack_from("<I", pe, table + 40 * i + 36)[0]
        if flags & 0x20000000 and raw_size > at:
            out = bytearray(pe)
            out[raw_ptr + at] ^= 0xFF
            return bytes(out)
    raise AssertionError("no executable section")


def sign_msi(
    unsigned: Path, signed: Path, *, signer: str = "leaf", dse: bool = False, nest: bool = False
) -> Path:
    """`unsigned` signed by osslsigncode with a fixture key (`leaf` or `other-leaf`).

    With `dse`, the extended signature (`-add-msi-dse`: a MsiDigitalSignatureEx stream); with
    `nest`, a signature nested into the one `unsigned` already has (`-nest`).
    """
    import subprocess

    keys = FIXTURES / "signature"
    subprocess.run(["osslsigncode", "sign", "-certs", str(keys / f"{signer}.pem"), "-key",
                    str(keys / f"{signer}.key"), *(["-add-msi-dse"] if dse else []),
                    *(["-nest"] if nest else []),
                    "-in", str(unsigned), "-out", str(signed)],
                   check=True, capture_output=True)  # fmt: skip
    return signed


def write_cab(
    path: Path, files: dict[str, bytes], *, mtime: int = 1_700_000_000, compress: bool = True
) -> Path:
    """A cabinet made by gcab (one folder, MSZIP or stored) of `files` (flat names), times fixed."""
    import os
    import subprocess
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            os.utime(Path(tmp) / name, (mtime, mtime))
        flags = ["-c", "-z", "-n"] if compress else ["-c", "-n"]
        subprocess.run(["gcab", *flags, str(path.resolve()), *files], cwd=tmp, check=True,
                       capture_output=True)  # fmt: skip
    return path


def osslsigncode_verifies(signed: Path) -> bool:
    """osslsigncode's own verdict on `signed` (the oracle), against the fixture CA."""
    import subprocess

    done = subprocess.run(["osslsigncode", "verify", "-CAfile",
                           str(FIXTURES / "signature" / "ca.pem"), "-in", str(signed)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.returncode == 0 and "Succeeded" in done.stdout


Tree = dict[str, "bytes | Tree"]


def repack_msi(
    msi: Path, out: Path, extra: Tree, *, replace: dict[str, bytes] | None = None
) -> Path:
    """`msi`'s root streams (some `replace`d) plus `extra`, written by libgsf.

    `extra` maps a name to a stream's bytes or to a storage's own `extra` (nested storages).
    `gsf createole` makes a compound file from a folder tree: each sub-folder a storage. The
    MSI's streams keep their raw names (as file names: data, never paths the tests trust);
    the root CLSID is zero (libgsf writes none).
    """
    import subprocess
    import tempfile

    import olefile

    def lay(folder: Path, tree: Tree) -> None:
        for name, value in tree.items():
            if isinstance(value, bytes):
                (folder / name).write_bytes(value)
            else:
                (folder / name).mkdir()
                lay(folder / name, value)

    with tempfile.TemporaryDirectory() as tmp, olefile.OleFileIO(str(msi)) as ole:
        root: Tree = {e[0]: (replace or {}).get(e[0]) or ole.openstream(e).read()
                      for e in ole.listdir()}  # fmt: skip
        root.update(extra)
        lay(Path(tmp), root)
        subprocess.run(["gsf", "createole", str(out.resolve()), *sorted(root)], cwd=tmp,
                       check=True, capture_output=True)  # fmt: skip
    return out


def pkcs7_written_by(signed: Path) -> bytes:
    """The first PKCS#7 SignedData (DER, long form length) in `signed`'s bytes.

    For files osslsigncode signs but writes wrongly (nested storages): its PKCS#7 was computed
    from the input it parsed, so the blob is right even where the compound file is not.
    """
    data = signed.read_bytes()
    at = data.find(bytes.fromhex("06092a864886f70d010702")) - 4  # SEQUENCE, then the OID
    assert at >= 0 and data[at : at + 2] == b"\x30\x82"
    return data[at : at + 4 + int.from_bytes(data[at + 2 : at + 4], "big")]


def stored_cab(files: list[tuple[bytes, bytes]], *, data_reserve: bytes = b"") -> bytes:
    """A stored cabinet with one folder and one data block per file (each under 32 KiB; gcab
    makes one folder only), no checksums; `data_reserve` is each data block's reserve."""
    reserve = struct.pack("<HBB", 0, 0, len(data_reserve)) if data_reserve else b""
    entries = b"".join(struct.pack("<IIHHHH", len(data), 0, i, 0x5821, 0, 0x20) + name + b"\0"
                       for i, (name, data) in enumerate(files))  # fmt: skip
    coff = 36 + len(reserve) + 8 * len(files)
    at, folders, blocks = coff + len(entries), b"", b""
    for _, data in files:
        folders += struct.pack("<IHH", at + len(blocks), 1, 0)
        blocks += struct.pack("<IHH", 0, len(data), len(data)) + data_reserve + data
    size = at + len(blocks)
    head = struct.pack("<4sIIIIIBBHHHHH", b"MSCF", 0, size, 0, coff, 0, 3, 1, len(files),
                       len(files), 4 if data_reserve else 0, 0x1234, 0)  # fmt: skip
    return head + reserve + folders + entries + blocks


def reblock_cab(cab: bytes, blocks: Callable[[bytes], list[tuple[bytes, bytes]]]) -> bytes:
    """gcab's cabinet `cab` (one folder, no reserve) with its data blocks written anew:
    `blocks(content)` gives each block's (content, data); sizes, checksums, the block count
    and cbCabinet are set to match, so the cabinet is valid and holds the same files."""
    from reprover.compare.archives.cabfmt import checksum

    start, count, kind = struct.unpack_from("<IHH", cab, 36)
    assert struct.unpack_from("<H", cab, 30)[0] == 0 and kind in (0, 1)
    content, pos, window = b"", start, b""
    for _ in range(count):
        size = struct.unpack_from("<H", cab, pos + 4)[0]
        data = cab[pos + 8 : pos + 8 + size]
        if kind == 1:
            engine = zlib.decompressobj(-15, zdict=window) if window else zlib.decompressobj(-15)
            data = engine.decompress(data[2:])
            window = (window + data)[-32768:]
        content += data
        pos += 8 + size
    out = bytearray(cab[:start])
    made = blocks(content)
    for plain, data in made:
        sizes = struct.pack("<HH", len(data), len(plain))
        out += struct.pack("<I", checksum(sizes, checksum(data, 0))) + sizes + data
    struct.pack_into("<I", out, 8, len(out))
    struct.pack_into("<H", out, 40, len(made))
    return bytes(out)


def mszip_blocks(
    content: bytes,
    *,
    level: int = 6,
    cut: int = 32768,
    flush: bool = False,
    chained: bool = False,
) -> list[tuple[bytes, bytes]]:
    """MSZIP blocks of `content` cut every `cut` bytes, each one deflate stream at `level`;
    `flush` adds an empty stored block (a sync flush) inside each; `chained` gives each
    stream the content before it as its dictionary (Microsoft's MSZIP carries the window)."""
    out = []
    for at in range(0, len(content), cut):
        plain, window = content[at : at + cut], content[max(0, at - 32768) : at]
        engine = (zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   zdict=window) if chained and window
                  else zlib.compressobj(level, zlib.DEFLATED, -15))  # fmt: skip
        data = engine.compress(plain)
        if flush:
            data += engine.flush(zlib.Z_SYNC_FLUSH)
        out.append((plain, b"CK" + data + engine.flush()))
    return out
