"""Red team on the archive signature proofs: the vendor signs, and smuggles bytes beside it.

Each test is one attack, made with the real signing tool where one exists (jarsigner,
osslsigncode, rpmsign), run through the CLI with `--allow signature` (and the rule the attack
leans on), and must leave the archive `different`. Where the attack was a false pass before
its fix, the docstring says so and what stops it now. The index is in `README.md`.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import random
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import olefile
import pytest

from archive_support import (
    DATE,
    FIXTURES,
    artifact,
    osslsigncode_verifies,
    report,
    sign_msi,
    write_msi,
    write_tar,
    write_zip,
)
from jar_support import (
    CLASSES,
    MANIFEST,
    block,
    digest,
    jarsign,
    jarsigner_verifies,
    jdk,
    keystore,
    manifest_for,
    signature_file,
    wrap,
    write_jar,
)
from reprover.compare.archives import recompress
from rpm_support import MISSING, build_rpm, restate
from signature_support import osslsign

CA = FIXTURES / "signature" / "ca.pem"
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
needs_jdk = pytest.mark.skipif(not jdk(), reason="default-jdk-headless: .ci/apt-packages.txt")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKCS#12 keystore of the test signer, which chains to `CA`."""
    return keystore(tmp_path_factory.mktemp("store"))


def folders(tmp: Path) -> tuple[Path, Path]:
    """`released/` and `rebuilt/` under `tmp`, so both files keep one name."""
    out = tmp / "released", tmp / "rebuilt"
    for folder in out:
        folder.mkdir()
    return out


def refused(run_cli: Any, released: Path, rebuilt: Path, *rules: str) -> Any:
    """`diff --allow signature` (and `rules`) with the CA pinned must say `different` (exit
    1); return the outer artifact."""
    allow = [a for rule in ("signature", *rules) for a in ("--allow", rule)]
    code, rep = report(run_cli, "diff", released, rebuilt, *allow, "--trusted", CA)
    assert code == 1, rep
    outer = artifact(rep, released.name)
    assert outer["verdict"] == "different"
    assert not any("released = rebuilt" in n for n in outer["notes"])
    return outer


def hidden(outer: Any) -> str:
    """The details of the artifact's `archive.hidden` differences, joined."""
    return " ".join(d["detail"] for d in outer["differences"] if d["region"] == "archive.hidden")


def edit_central(data: bytes, name: str, change: Any) -> bytes:
    """`data` (a ZIP) with the central record of `name` passed through `change(fixed, extra)`
    -> (fixed, extra); the directory's size in the end record follows."""
    at = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, at + 10)
    pos, out = start, b""
    for _ in range(count):
        fixed = list(struct.unpack_from("<4s6H3I5H2I", data, pos))
        nlen, xlen, clen = fixed[10:13]
        raw = data[pos + 46 : pos + 46 + nlen]
        extra = data[pos + 46 + nlen : pos + 46 + nlen + xlen]
        tail = data[pos + 46 + nlen + xlen : pos + 46 + nlen + xlen + clen]
        pos += 46 + nlen + xlen + clen
        if raw == name.encode():
            fixed, extra = change(fixed, extra)
            fixed[11] = len(extra)
        out += struct.pack("<4s6H3I5H2I", *fixed) + raw + extra + tail
    end = bytearray(data[at:])
    struct.pack_into("<I", end, 12, len(out))
    return data[:start] + out + bytes(end)


@pytest.mark.slow
@needs_jdk
def test_jar_manifest_section_without_digests_carries_a_payload(
    tmp_path: Path, run_cli: Any, store: Path
) -> None:
    """A manifest section naming no member and holding no digest (`Name: <2 KB>`), kept and
    signed by jarsigner: bytes the rebuild lacks that no signing explains. Was signature-only
    (a new section was only held to "no digest of a non-member"); now a section that is not
    the rebuild's must hold a digest."""
    released, rebuilt = folders(tmp_path)
    write_jar(rebuilt / "app.jar")
    carrier = MANIFEST + wrap("Name: " + "payload-" * 256).encode() + b"\r\n"
    write_jar(tmp_path / "carrier.jar", manifest=carrier)
    jarsign(tmp_path / "carrier.jar", released / "app.jar", store)
    assert jarsigner_verifies(released / "app.jar")  # a genuine signature over the payload
    outer = refused(run_cli, released / "app.jar", rebuilt / "app.jar")
    assert "not the rebuild's and holds no digest" in " ".join(outer["notes"])


@pytest.mark.slow
@needs_jdk
def test_jar_member_swapped_after_signing_for_an_allowed_variant(
    tmp_path: Path, run_cli: Any, store: Path
) -> None:
    """The rebuild signed by jarsigner, then an inner ZIP swapped for one that differs only by
    times (allowed by `archive.mtime`): the manifest digests the rebuilt member, so the JAR's
    signature no longer verifies (jarsigner: not verified), yet the proof said "released =
    rebuilt + JAR signature". Now each digest must also match the released member, as Java
    checks it."""
    released, rebuilt = folders(tmp_path)
    old = write_zip(tmp_path / "old.zip", {"a.txt": b"a"}).read_bytes()
    new = write_zip(tmp_path / "new.zip", {"a.txt": b"a"}, date=(2025, 5, 5, 5, 5, 6))
    write_jar(rebuilt / "app.jar", dict(CLASSES, **{"lib/inner.zip": old}))
    jarsign(rebuilt / "app.jar", tmp_path / "signed.jar", store)
    with (
        zipfile.ZipFile(tmp_path / "signed.jar") as zin,
        zipfile.ZipFile(released / "app.jar", "w") as zout,
    ):
        for info in zin.infolist():
            swap = info.filename == "lib/inner.zip"
            zout.writestr(info, new.read_bytes() if swap else zin.read(info.filename))
    assert not jarsigner_verifies(released / "app.jar")
    outer = refused(run_cli, released / "app.jar", rebuilt / "app.jar", "archive.mtime")
    assert "against the released member's content" in " ".join(outer["notes"])


@pytest.mark.slow
@needs_jdk
def test_zip_local_sizes_beside_a_data_descriptor_carry_a_payload(
    tmp_path: Path, run_cli: Any, store: Path
) -> None:
    """jarsigner writes data descriptors (flag bit 3), and its local headers' CRC and sizes
    are then zero; 12 bytes of payload in each of them (Java and jarsigner ignore them: it
    still verifies) were compared with nothing, so the signed JAR was signature-only. Now
    they must be zero or the central directory's values."""
    released, rebuilt = folders(tmp_path)
    write_jar(rebuilt / "app.jar")
    jarsign(rebuilt / "app.jar", tmp_path / "signed.jar", store)
    data, pos = bytearray((tmp_path / "signed.jar").read_bytes()), 0
    while (pos := data.find(b"PK\x03\x04", pos + 1)) > 0:
        if struct.unpack_from("<H", data, pos + 6)[0] & 8:
            data[pos + 14 : pos + 26] = b"EVIL PAYLOAD"
    (released / "app.jar").write_bytes(data)
    assert jarsigner_verifies(released / "app.jar")
    outer = refused(run_cli, released / "app.jar", rebuilt / "app.jar")
    assert "disagrees with the central directory: crc, compressed size, size" in hidden(outer)


def info_zip(tmp: Path, name: str, stamp: int) -> Path:
    """A ZIP64 archive (Info-ZIP `zip -fz -X`) of one file whose time is `stamp`."""
    folder = tmp / f"src-{stamp}"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"hello\n" * 50)
    subprocess.run(["touch", "-d", f"@{stamp}", str(folder / "a.txt")], check=True)
    subprocess.run(["zip", "-q", "-fz", "-X", str(tmp / name), "a.txt"], cwd=folder, check=True)
    return tmp / name


@pytest.mark.skipif(not shutil.which("zip"), reason="zip: .ci/apt-packages.txt")
@pytest.mark.parametrize("where", ["ZIP64 record slack", "disk number", "ZIP64 end record"])
def test_zip_structures_no_field_read_carry_bytes_beside_an_allowed_time(
    tmp_path: Path, run_cli: Any, where: str
) -> None:
    """Bytes in ZIP structures the walk read past: the tail of an entry's ZIP64 record, the
    entry's disk-number-start field, the ZIP64 end record's extensible data. Beside any
    allowed difference (a time under `archive.mtime`, or a signature's manifest) they rode
    along unseen: `equivalent`. Now each is hidden (or a field no rule allows)."""
    released, rebuilt = folders(tmp_path)
    files = {"a.txt": b"hello\n" * 50}
    if where == "ZIP64 end record":
        base = info_zip(tmp_path, "base.zip", 1_700_000_000)
        info_zip(tmp_path, "rebuilt/b.zip", 1_600_000_000)
    else:
        base = write_zip(tmp_path / "base.zip", files)
        write_zip(rebuilt / "b.zip", files, date=(2020, 1, 1, 0, 0, 0))
    data = base.read_bytes()
    code, rep = report(run_cli, "diff", base, rebuilt / "b.zip", "--allow", "archive.mtime")
    assert code == 0, rep  # the control: the time alone is allowed
    if where == "ZIP64 record slack":
        data = edit_central(data, "a.txt", lambda f, x: (f, x + b"\x01\x00\x40\x00" + b"Z" * 64))
    elif where == "disk number":
        data = edit_central(data, "a.txt", lambda f, x: ([*f[:13], 0x4141, *f[14:]], x))
    else:
        rec = data.rfind(b"PK\x06\x06")
        size = struct.unpack_from("<Q", data, rec + 4)[0]
        grown = bytearray(data[rec : rec + 12 + size])
        struct.pack_into("<Q", grown, 4, size + 64)
        data = data[:rec] + bytes(grown) + b"Z" * 64 + data[rec + 12 + size :]
    (released / "b.zip").write_bytes(data)
    if where != "ZIP64 end record":  # Python looks for that record right before its locator
        assert zipfile.ZipFile(released / "b.zip").read("a.txt") == files["a.txt"]
    code, rep = report(run_cli, "diff", released / "b.zip", rebuilt / "b.zip",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 1, rep
    outer = artifact(rep, "b.zip")
    assert outer["verdict"] == "different"
    assert {"ZIP64 record slack": "no field reads", "disk number": "starts on disk",
            "ZIP64 end record": "extensible data"}[where] in hidden(outer)  # fmt: skip


@pytest.fixture(scope="module")
def msis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an osslsigncode-signed MSI, its unsigned wixl rebuild), in folders of their own."""
    if not all(shutil.which(t) for t in ("wixl", "osslsigncode")):
        pytest.skip("wixl and osslsigncode: .ci/apt-packages.txt")
    root = tmp_path_factory.mktemp("msi")
    (root / "rebuilt").mkdir()
    rebuilt = write_msi(root / "rebuilt" / "setup.msi", DLL.read_bytes())
    return sign_msi(rebuilt, root / "signed.msi"), rebuilt


def _table_entry(data: bytearray, table: int, index: int, value: int) -> None:
    """Set entry `index` of the first sector of the table starting at header offset `table`."""
    sect = struct.unpack_from("<I", data, table)[0]
    struct.pack_into("<I", data, (sect + 1) * 512 + 4 * index, value)


@pytest.mark.parametrize(
    "where",
    ["sector marked FATSECT", "FAT past the last sector", "MiniFAT past the mini stream",
     "transaction signature", "header DIFAT past the FAT", "chain longer than its stream"],
)  # fmt: skip
def test_msi_allocation_entries_no_chain_reads_carry_bytes(
    msis: tuple[Path, Path], tmp_path: Path, run_cli: Any, where: str
) -> None:
    """Bytes in a signed MSI's allocation tables that no reader follows: a whole sector of
    payload appended and marked FATSECT in the FAT (its owner was taken from that mark, so
    it was never checked), FAT and MiniFAT entries past the sectors in use, the header's
    transaction signature and DIFAT slots past the FAT's sectors. osslsigncode verifies each
    (the MSI hash covers streams only), and each was `signature-only`; `olealloc` now
    hides them."""
    signed, rebuilt = msis
    data = bytearray(signed.read_bytes())
    if where == "sector marked FATSECT":
        sect = len(data) // 512 - 1
        data += b"payload!" * 64
        _table_entry(data, 0x4C, sect, 0xFFFFFFFD)
    elif where == "FAT past the last sector":
        _table_entry(data, 0x4C, len(data) // 512 + 3, 0x41414141)
    elif where == "MiniFAT past the mini stream":
        _table_entry(data, 0x3C, 127, 0x41414141)
    elif where == "transaction signature":
        data[0x34:0x38] = b"EVIL"
    elif where == "header DIFAT past the FAT":
        data[0x4C + 4 * 100 : 0x4C + 4 * 102] = b"EVILEVIL"
    else:  # already stopped: a payload sector chained after the cabinet stream's last one
        with olefile.OleFileIO(str(signed)) as ole:
            cab = max(
                (e for e in ole.direntries if e is not None and e.entry_type == 2),
                key=lambda e: e.size,
            )  # the embedded cabinet, named in MSI's encoding
            sect = cab.isectStart
            while ole.fat[sect] != 0xFFFFFFFE:
                sect = ole.fat[sect]
        extra = len(data) // 512 - 1
        data += b"payload!" * 64
        _table_entry(data, 0x4C, sect, extra)
        _table_entry(data, 0x4C, extra, 0xFFFFFFFE)
    (tmp_path / "released").mkdir()
    released = tmp_path / "released" / "setup.msi"
    released.write_bytes(bytes(data))
    assert osslsigncode_verifies(released)
    outer = refused(run_cli, released, rebuilt)
    reason = {
        "sector marked FATSECT": "is in no chain",
        "FAT past the last sector": "FAT entries past the last sector",
        "MiniFAT past the mini stream": "MiniFAT entries of mini sectors no stream uses",
        "transaction signature": "a transaction signature",
        "header DIFAT past the FAT": "DIFAT entries past the FAT's sectors",
        "chain longer than its stream": "sector after the end of stream 'product.cab'",
    }
    assert reason[where] in hidden(outer), hidden(outer)  # fmt: skip


def test_jar_signature_entries_carry_well_formed_time_and_owner_extras(
    tmp_path: Path, run_cli: Any
) -> None:
    """64 bytes in the `.SF` and block entries' extras, each well formed as a time (0x5455,
    NTFS 0x000A) or an owner (0x7875): only extras the ZIP reader could not name were refused
    there, so these rode along with the signature (`signature-only`); jarsigner writes no
    extra on them, and now any extra on a signing entry is refused."""
    stamp = struct.pack("<HHB", 0x5455, 5, 1) + b"EVIL"
    owner = struct.pack("<HHBB", 0x7875, 19, 1, 8) + b"PAYLOAD!" + b"\x08" + b"PAYLOAD!"
    ntfs = struct.pack("<HH", 0x000A, 32) + bytes(4) + struct.pack("<HH", 1, 24) + b"NTFSTIME" * 3
    manifest = MANIFEST + b"".join(
        f"Name: {n}\r\nSHA-256-Digest: {digest(d)}\r\n\r\n".encode() for n, d in CLASSES.items()
    )
    released, rebuilt = folders(tmp_path)
    sf = signature_file(manifest)
    entries = [("META-INF/MANIFEST.MF", manifest, b""), ("META-INF/SIGNER.SF", sf, stamp + owner),
               ("META-INF/SIGNER.RSA", block(sf), ntfs)]  # fmt: skip
    with zipfile.ZipFile(released / "app.jar", "w") as z:
        for name, data, extra in [*entries, *((n, d, b"") for n, d in CLASSES.items())]:
            info = zipfile.ZipInfo(name, DATE)
            info.external_attr, info.create_system = 0o644 << 16, 3
            info.compress_type, info.extra = zipfile.ZIP_DEFLATED, extra
            z.writestr(info, data)
    write_jar(rebuilt / "app.jar")
    outer = refused(run_cli, released / "app.jar", rebuilt / "app.jar")
    notes = " ".join(outer["notes"])
    assert "META-INF/SIGNER.RSA carries bytes no signature covers (extra.ntfs.mtime" in notes or (
        "META-INF/SIGNER.SF carries bytes no signature covers (extra.mtime, extra.owner" in notes
    ), notes


def test_msi_minifat_count_past_its_chain_is_a_malformed_msi(
    msis: tuple[Path, Path], tmp_path: Path, run_cli: Any
) -> None:
    """A signed MSI whose header claims one MiniFAT sector more than its chain holds
    (osslsigncode still verifies): olefile failed later, reading the MiniFAT, with an OSError
    the driver took for an unreadable input (exit 2, "cannot read None"). Now it is a
    malformed compound file, compared as bytes: `different`, exit 1."""
    signed, rebuilt = msis
    data = bytearray(signed.read_bytes())
    struct.pack_into("<I", data, 0x40, struct.unpack_from("<I", data, 0x40)[0] + 1)
    (tmp_path / "released").mkdir()
    released = tmp_path / "released" / "setup.msi"
    released.write_bytes(bytes(data))
    assert osslsigncode_verifies(released)
    outer = refused(run_cli, released, rebuilt)
    assert any("not read as ole: ole: the MiniFAT" in n for n in outer["notes"]), outer["notes"]


@pytest.mark.parametrize("field", ["size", "checksum"])
def test_tar_of_a_signed_program_with_data_after_a_header_number(
    tmp_path: Path, run_cli: Any, field: str
) -> None:
    """A TAR holding a signed program (proven signature-only) against the TAR of its unsigned
    rebuild: the member's size and header checksum differ as consequences, and consequences
    were allowed beside anything allowed, even when the field held data after its number's
    NUL (tarfile reads up to the NUL): `sign-check` passed with 6 bytes of payload. A field
    holding data is now hidden, never a consequence (and the checksum is checked as the
    other numbers are)."""
    signed = (FIXTURES / "signature" / "other-signed.exe").read_bytes()
    unsigned = (FIXTURES / "signature" / "other-unsigned.exe").read_bytes()
    released, rebuilt = folders(tmp_path)
    write_tar(rebuilt / "app.tar", {"app.exe": unsigned})
    write_tar(released / "app.tar", {"app.exe": signed})
    code, rep = report(run_cli, "sign-check", rebuilt / "app.tar", released / "app.tar")
    assert code == 0, rep  # the control: the program's signature alone is proven
    data = bytearray((released / "app.tar").read_bytes())
    at = next(i for i in range(0, len(data), 512) if data[i : i + 8] == b"app.exe\0")
    block = data[at : at + 512]
    if field == "size":
        block[124:136] = b"%o\0" % len(signed) + b"PAYLOAD"[: 12 - len(b"%o\0" % len(signed))]
    block[148:156] = b" " * 8
    digits = b"%o\0" % sum(block)
    block[148:156] = digits + (b"PAYLOAD" if field == "checksum" else b"      ")[: 8 - len(digits)]
    data[at : at + 512] = block
    (released / "app.tar").write_bytes(bytes(data))
    with tarfile.open(released / "app.tar") as tar:  # tarfile reads the numbers up to the NUL
        assert tar.extractfile("app.exe").read() == signed  # type: ignore[union-attr]
    code, rep = report(run_cli, "sign-check", rebuilt / "app.tar", released / "app.tar")
    assert code == 1, rep
    outer = artifact(rep, "app.tar")
    assert outer["verdict"] == "different"
    found = {d["region"]: d for d in outer["differences"]}
    assert not found[f"tar.member[app.exe].{field}"]["allowed"]
    assert found[f"tar.member[app.exe].{field}"]["kind"] == "hidden"


BINARY = b"\x7fELF" + b"hello" * 100


@pytest.fixture(scope="module")
def rpm_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an rpmbuild package of one file, the same built 100 s later), in folders of their own."""
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)}: .ci/apt-packages.txt")
    root = tmp_path_factory.mktemp("rpm")
    released, rebuilt = folders(root)
    return (build_rpm(root, released / "x.rpm", BINARY, 1_700_000_000),
            build_rpm(root, rebuilt / "x.rpm", BINARY, 1_700_000_100))  # fmt: skip


def test_rpm_file_digest_rewritten_beside_an_allowed_build_time(
    rpm_pair: tuple[Path, Path], tmp_path: Path, run_cli: Any
) -> None:
    """Two rpmbuild packages of one file at two build times (`archive.mtime` allows them),
    the released one's header file digest replaced by 32 chosen bytes: the header's digests
    and sizes are consequences, allowed beside anything allowed, so the payload rode along
    (`equivalent`). The RPM signature proof keeps the main header byte for byte; this is the
    path without it. Digests and sizes of files now follow only a file whose content
    differs."""
    code, rep = report(run_cli, "diff", *rpm_pair, "--allow", "archive.mtime")
    assert code == 0, rep  # the control: the build time alone is allowed
    data = rpm_pair[0].read_bytes()
    at = data.index(hashlib.sha256(BINARY).hexdigest().encode())
    (tmp_path / "released").mkdir()
    released = tmp_path / "released" / "x.rpm"
    # the header's own digests made right again (rpmkeys -K: digests OK): only the file's is not
    released.write_bytes(restate(data[:at] + b"payload!" * 8 + data[at + 64 :]))
    code, rep = report(run_cli, "diff", released, rpm_pair[1], "--allow", "archive.mtime")
    assert code == 1, rep
    outer = artifact(rep, "x.rpm")
    assert outer["verdict"] == "different"
    found = {d["region"]: d for d in outer["differences"]}
    assert not found["rpm.header.filedigests.digest"]["allowed"]
    # not the file's digest at all (rpmdigests), so never a consequence of anything
    assert found["rpm.header.filedigests.digest"]["kind"] == "hidden"


def test_rpm_payload_cpio_checksum_carries_bytes_beside_an_allowed_time(
    rpm_pair: tuple[Path, Path], tmp_path: Path, run_cli: Any
) -> None:
    """The newc cpio header's checksum field, which rpm and cpio never read, set to
    `DEADBEEF` in the released payload (recompressed; `archive.compression` and
    `archive.mtime` allowed): a consequence allowed beside the times (`equivalent`). A newc
    checksum but zero, or a header number that is not plain hex, is now a hidden field."""
    data = rpm_pair[0].read_bytes()
    at = data.index(b"\x1f\x8b\x08")
    payload = bytearray(gzip.decompress(data[at:]))
    assert payload[:6] == b"070701"
    payload[102:110] = b"DEADBEEF"
    (tmp_path / "released").mkdir()
    released = tmp_path / "released" / "x.rpm"
    released.write_bytes(data[:at] + gzip.compress(bytes(payload), mtime=0))
    code, rep = report(run_cli, "diff", released, rpm_pair[1], "--allow", "archive.mtime",
                       "--allow", "archive.compression")  # fmt: skip
    assert code == 1, rep
    found = {d["region"]: d for d in artifact(rep, "x.rpm")["differences"]}
    field = found["cpio.member[./usr/bin/hello].checksum"]
    assert not field["allowed"] and field["kind"] == "hidden"


@pytest.mark.skipif(not shutil.which("osslsigncode"), reason="osslsigncode: .ci/apt-packages.txt")
@pytest.mark.parametrize("layers", ["zip", "tar in zip"])
def test_program_signed_outside_the_pins_two_layers_down(
    tmp_path: Path, run_cli: Any, layers: str
) -> None:
    """Already stopped: a program signed by a key of another CA (osslsigncode, a valid
    signature) inside a ZIP, or a TAR inside a ZIP, checked with `--trusted` the release CA:
    the pin reaches every layer, so the member is `different` and the bundle too; with no pin
    the same bundle is signature-only (a signature proves integrity, the pin identity)."""
    unsigned = FIXTURES / "signature" / "other-unsigned.exe"
    osslsign(unsigned, tmp_path / "signed.exe", "other-leaf")
    released, rebuilt = folders(tmp_path)
    for folder, program in ((released, tmp_path / "signed.exe"), (rebuilt, unsigned)):
        inner = {"app.exe": program.read_bytes()}
        if layers == "tar in zip":
            inner = {"app.tar": write_tar(folder / "app.tar", inner).read_bytes()}
            (folder / "app.tar").unlink()
        write_zip(folder / "bundle.zip", inner)
    code, rep = report(run_cli, "sign-check", rebuilt / "bundle.zip", released / "bundle.zip",
                       "--trusted", CA)  # fmt: skip
    assert code == 1, rep
    leaf = next(a for a in rep["artifacts"] if a["path"].endswith("!app.exe"))
    assert leaf["verdict"] == "different"
    assert artifact(rep, "bundle.zip")["verdict"] == "different"
    code, rep = report(run_cli, "sign-check", rebuilt / "bundle.zip", released / "bundle.zip")
    assert code == 0, rep


def test_member_name_with_a_bracket_cannot_pose_as_a_signature_entry(
    tmp_path: Path, run_cli: Any
) -> None:
    """Already stopped: an empty directory `META-INF/SIGNER.SF]x/` added to a signed JAR.
    Unquoted, its region `zip.entry[META-INF/SIGNER.SF]x/]` would read as a field `x/]` of
    the signature file (an effect of signing) and the proof skips empty directories; `quote`
    escapes `]` (`%5D`), so the entry is itself, has no role, and is never allowed."""
    manifest = manifest_for(CLASSES)
    sf = signature_file(manifest)
    entries = [("META-INF/MANIFEST.MF", manifest), ("META-INF/SIGNER.SF", sf),
               ("META-INF/SIGNER.RSA", block(sf)), ("META-INF/SIGNER.SF]x/", b""),
               *CLASSES.items()]  # fmt: skip
    released, rebuilt = folders(tmp_path)
    write_zip(released / "app.jar", entries)
    write_jar(rebuilt / "app.jar")
    outer = refused(run_cli, released / "app.jar", rebuilt / "app.jar")
    found = {d["region"]: d for d in outer["differences"]}
    assert not found["zip.entry[META-INF/SIGNER.SF%5Dx/]"]["allowed"]


def test_deflate_block_choices_carry_a_payload_beside_an_allowed_time(
    tmp_path: Path, run_cli: Any
) -> None:
    """A .tar.gz whose tar differs from the rebuild's by a member time (`archive.mtime`),
    its deflate stream re-encoded with one empty block per payload bit (a stored block for 1,
    a fixed one for 0; the stream still inflates to the same tar): 300 bytes ride in
    3.8 KB of compressed bytes, and the same holds for any member whose content differs by an
    allowed change (a signature included), so `sign-check` of a .tar.gz holding a signed
    program accepts it too. Stopped: the rebuild's stream is zlib level 9's, and the released
    stream is not what level 9 makes of its content (`gzip.compression.encoding`, allowed only
    by `archive.compression`); the honest stream of the same tar passes under the time alone."""
    files = {"a.txt": b"hello\n" * 100}
    released, rebuilt = folders(tmp_path)
    write_tar(rebuilt / "t.tar.gz", files, mtime=1_600_000_000, compression="gz")
    raw = write_tar(tmp_path / "t.tar", files, mtime=1_700_000_000).read_bytes()
    engine = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = engine.compress(raw[:1])
    for bit in "".join(f"{b:08b}" for b in b"SECRET MESSAGE " * 20):
        stream += engine.flush(zlib.Z_SYNC_FLUSH if bit == "1" else zlib.Z_PARTIAL_FLUSH)
    stream += engine.compress(raw[1:]) + engine.flush()
    head = b"\x1f\x8b\x08\x00" + struct.pack("<I", 1_700_000_000)
    head += (rebuilt / "t.tar.gz").read_bytes()[8:10]  # the rebuild's XFL and OS bytes
    data = head + stream + struct.pack("<II", zlib.crc32(raw), len(raw))
    assert gzip.decompress(data) == raw
    (released / "t.tar.gz").write_bytes(data)
    code, rep = report(run_cli, "diff", released / "t.tar.gz", rebuilt / "t.tar.gz",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 1, rep
    [encoding] = [d for d in artifact(rep, "t.tar.gz")["differences"]
                  if d["region"] == "gzip.compression.encoding"]  # fmt: skip
    assert not encoding["allowed"] and "zlib level 9" in encoding["detail"]
    honest = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = head + honest.compress(raw) + honest.flush() + data[-8:]
    (released / "t.tar.gz").write_bytes(data)
    code, rep = report(run_cli, "diff", released / "t.tar.gz", rebuilt / "t.tar.gz",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 0, rep


def test_deflate_block_choices_in_a_zip_member_carry_no_payload(
    tmp_path: Path, run_cli: Any
) -> None:
    """The same channel in a ZIP: a member (a tar) whose content differs by an allowed time,
    deflated with one empty block per payload bit. The rebuild's member is zlib level 6's
    (Python's zipfile), the released one is not what level 6 makes of its content."""
    files = {"a.txt": b"hello\n" * 100}
    released, rebuilt = folders(tmp_path)
    old = write_tar(tmp_path / "old.tar", files, mtime=1_600_000_000).read_bytes()
    new = write_tar(tmp_path / "new.tar", files, mtime=1_700_000_000).read_bytes()
    with zipfile.ZipFile(rebuilt / "b.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("t.tar", (2020, 1, 1, 0, 0, 0)), old, zipfile.ZIP_DEFLATED)
    engine = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = engine.compress(new[:1])
    for bit in "".join(f"{b:08b}" for b in b"SECRET"):
        stream += engine.flush(zlib.Z_SYNC_FLUSH if bit == "1" else zlib.Z_PARTIAL_FLUSH)
    stream += engine.compress(new[1:]) + engine.flush()
    info = zipfile.ZipInfo("t.tar", (2020, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(released / "b.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(info, new, zipfile.ZIP_DEFLATED)
    data = (released / "b.zip").read_bytes()
    honest = zlib.compressobj(6, zlib.DEFLATED, -15)
    plain = honest.compress(new) + honest.flush()
    assert plain in data
    code, rep = report(run_cli, "diff", released / "b.zip", rebuilt / "b.zip",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 0, rep  # the honest member: its time alone, its encoding zlib's
    with zipfile.ZipFile(released / "b.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr(info, stream, zipfile.ZIP_STORED)  # the stuffed stream, then marked deflated
    forged = _as_deflated(released / "b.zip", new)
    (released / "b.zip").write_bytes(forged)
    assert zipfile.ZipFile(released / "b.zip").read("t.tar") == new
    code, rep = report(run_cli, "diff", released / "b.zip", rebuilt / "b.zip",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 1, rep
    [encoding] = [d for d in artifact(rep, "b.zip")["differences"]
                  if d["region"].endswith("compression.encoding")]  # fmt: skip
    assert not encoding["allowed"]


def _compress(kind: str, data: bytes, strong: bool) -> bytes:
    import bz2
    import lzma

    import zstandard

    if kind == "gz":
        return gzip.compress(data, 9 if strong else 1, mtime=0)
    if kind == "xz":
        return lzma.compress(data, preset=9 if strong else 0)
    if kind == "bz2":
        return bz2.compress(data, 9 if strong else 1)
    return zstandard.ZstdCompressor(level=19 if strong else 1).compress(data)


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2", "zst"])
def test_other_encoder_settings_beside_an_allowed_time_need_archive_compression(
    tmp_path: Path, run_cli: Any, kind: str
) -> None:
    """A compressed tar whose tar differs by a member time, compressed with other encoder
    settings than the rebuild's: the encoder's choices are free, so the stream's encoding is
    a difference (`<fmt>.compression.encoding`) that only `archive.compression` allows; with
    the rebuild's own settings the time alone passes."""
    files = {"a.txt": bytes(range(256)) * 64}
    released, rebuilt = folders(tmp_path)
    old = write_tar(tmp_path / "old.tar", files, mtime=1_600_000_000).read_bytes()
    new = write_tar(tmp_path / "new.tar", files, mtime=1_700_000_000).read_bytes()
    name = f"t.tar.{kind}"
    (rebuilt / name).write_bytes(_compress(kind, old, strong=True))
    (released / name).write_bytes(_compress(kind, new, strong=True))
    code, rep = report(run_cli, "diff", released / name, rebuilt / name,
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 0, rep
    (released / name).write_bytes(_compress(kind, new, strong=False))
    code, rep = report(run_cli, "diff", released / name, rebuilt / name,
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 1, rep
    found = [d for d in artifact(rep, name)["differences"] if not d["allowed"]]
    assert found, rep
    code, rep = report(run_cli, "diff", released / name, rebuilt / name,
                       "--allow", "archive.mtime", "--allow", "archive.compression")  # fmt: skip
    assert code == 0, rep


def _as_deflated(path: Path, content: bytes) -> bytes:
    """A one-member stored ZIP whose data is a raw deflate stream, relabelled as deflated with
    the CRC and size of `content` (what the stream inflates to)."""
    data = bytearray(path.read_bytes())
    crc, size = zlib.crc32(content), len(content)
    for sig, method_at, crc_at, usize_at in (
        (b"PK\x03\x04", 8, 14, 22),
        (b"PK\x01\x02", 10, 16, 24),
    ):
        at = data.index(sig)
        struct.pack_into("<H", data, at + method_at, 8)
        struct.pack_into("<I", data, at + crc_at, crc)
        struct.pack_into("<I", data, at + usize_at, size)
    return bytes(data)


@pytest.mark.slow
@needs_jdk
def test_jarsigner_dropping_a_rebuilds_zip_comment_stays_signature_only(
    tmp_path: Path, run_cli: Any, store: Path
) -> None:
    """The control beside the attacks on hidden bytes: jarsigner drops a ZIP comment, a field
    of kind hidden. When hidden bytes of the rebuild alone became an effect of signing (for
    MSI), every difference of kind hidden lost its role, so this genuine signature was
    refused (`different`); hidden *bytes* (`archive.hidden`) keep that rule, fields go to the
    prover, which checks the comment is dropped or kept."""
    released, rebuilt = folders(tmp_path)
    write_zip(rebuilt / "app.jar", [("META-INF/MANIFEST.MF", MANIFEST), *CLASSES.items()],
              comment=b"built by the vendor")  # fmt: skip
    jarsign(rebuilt / "app.jar", released / "app.jar", store)
    assert not zipfile.ZipFile(released / "app.jar").comment  # jarsigner dropped it
    code, rep = report(run_cli, "diff", released / "app.jar", rebuilt / "app.jar",
                       "--allow", "signature", "--trusted", CA)  # fmt: skip
    assert code == 0, rep
    outer = artifact(rep, "app.jar")
    assert outer["verdict"] == "signature-only"
    assert {d["region"]: d for d in outer["differences"]}["zip.comment"]["rule"] == "signature"


@pytest.mark.slow
def test_large_msi_rewritten_as_version_4_and_a_minor_version_changed(
    msis: tuple[Path, Path], tmp_path: Path, run_cli: Any
) -> None:
    """osslsigncode writes a large MSI (9 MiB here) anew as a version 4 compound file
    (4096-byte sectors): `ole.header.version` differed and had no role, so a genuine
    signature was `different`; a released version 3 or 4 is now an effect of signing. The
    attack beside it: the header's minor version set to 0x3F (osslsigncode still verifies)
    is no standard version, has no role, and stays `different`."""
    (tmp_path / "rebuilt").mkdir()
    rebuilt = write_msi(tmp_path / "rebuilt" / "setup.msi",
                        DLL.read_bytes() + random.Random(7).randbytes(9 << 20))  # noqa: S311  # fmt: skip
    (tmp_path / "released").mkdir()
    released = sign_msi(rebuilt, tmp_path / "released" / "setup.msi")
    assert released.read_bytes()[0x1A] == 4  # osslsigncode's rewrite: version 4
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature",
                       "--trusted", CA)  # fmt: skip
    assert code == 0, rep
    assert artifact(rep, "setup.msi")["verdict"] == "signature-only"
    signed, small = msis
    data = bytearray(signed.read_bytes())
    data[0x18] = 0x3F
    (tmp_path / "minor").mkdir()
    (tmp_path / "minor" / "setup.msi").write_bytes(bytes(data))
    assert osslsigncode_verifies(tmp_path / "minor" / "setup.msi")
    outer = refused(run_cli, tmp_path / "minor" / "setup.msi", small)
    assert not {d["region"]: d for d in outer["differences"]}["ole.header.version"]["allowed"]


@pytest.mark.parametrize("fmt", ["deflate", "xz", "bz2"])
def test_recompression_check_expands_a_bomb_in_bounded_pieces(fmt: str) -> None:
    """The encoding check inflates a stream again to recompress it; one unbounded call per
    1 MiB block held the whole expansion (a 300 KB .tar.gz of 300 MB of zeros beside an
    allowed time took 660 MB of memory, against 54 MB without the check). Each piece is now
    at most 1 MiB, and the pieces still add up. (zstd is fed 2 KiB at a time, as `streams`
    does: its binding cannot bound one call's output.)"""
    content = bytes(16 << 20)
    if fmt == "deflate":
        engine = zlib.compressobj(9, zlib.DEFLATED, -15)
        blob, decoder = engine.compress(content) + engine.flush(), zlib.decompressobj(-15)
    elif fmt == "xz":
        blob, decoder = lzma.compress(content), lzma.LZMADecompressor(lzma.FORMAT_XZ)
    else:
        blob, decoder = bz2.compress(content), bz2.BZ2Decompressor()
    total, largest = 0, 0
    for at in range(0, len(blob), 1 << 20):
        for piece in recompress._expand(decoder, blob[at : at + (1 << 20)]):
            total, largest = total + len(piece), max(largest, len(piece))
    assert total == len(content)
    assert largest <= (1 << 20), largest
