"""Attacks on MSI installers (issue 15): extended signatures, storages, the summary stream.

Each runs through the real CLI (`reprover diff`) against real files: wixl builds the MSI,
osslsigncode signs it (and is the oracle: `osslsigncode verify`), libgsf (`gsf createole`)
writes compound files with storages. Every archive rule that could excuse the attack is
allowed, so only the attack itself can make the comparison fail.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import BinaryIO

import olefile
import pytest

from archive_support import (
    FIXTURES,
    artifact,
    osslsigncode_verifies,
    regions,
    repack_msi,
    report,
    sign_msi,
    write_msi,
)
from reprover.compare.archives import msisig
from reprover.compare.archives.limits import Budget, Limits
from reprover.compare.archives.listing import Listing
from reprover.compare.archives.ole import entry_offset, read_ole
from reprover.compare.archives.olesummary import NAME as SUMMARY
from reprover.errors import VerificationError

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("wixl", "osslsigncode", "gsf")),
    reason="wixl, osslsigncode and gsf (libgsf-bin) are installed by .ci/apt-packages.txt",
)
RULES = ("--allow", "signature", "--allow", "archive.mtime", "--allow", "archive.order")
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_msi(tmp_path_factory.mktemp("msi") / "setup.msi", DLL.read_bytes())


def side(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir(exist_ok=True)
    return tmp_path / name / "setup.msi"


def patch_entry(msi: Path, name: str, offset: int, data: bytes) -> None:
    """Overwrite `data` at `offset` inside the directory entry of root stream `name`."""
    with olefile.OleFileIO(str(msi)) as ole:
        at = entry_offset(ole, ole._find(name)) + offset
    blob = bytearray(msi.read_bytes())
    blob[at : at + len(data)] = data
    msi.write_bytes(bytes(blob))


def summary(msi: Path) -> bytes:
    with olefile.OleFileIO(str(msi)) as ole:
        return bytes(ole.openstream(SUMMARY).read())


def listing_of(f: BinaryIO) -> Listing:
    size = f.seek(0, 2)
    return read_ole(f, size, Budget(Limits(), size))


def hash_of(msi: Path) -> bytes:
    """The MSI Authenticode hash of `msi`, as reprover computes it."""
    with msi.open("rb") as f:
        members = msisig.members_by_path(listing_of(f))
        return msisig.msi_hash(msisig.read_tree(msi), members, "sha256")


def refused(rep: dict, why: str) -> None:
    notes = " ".join(artifact(rep, "setup.msi")["notes"])
    assert f"signature-only refused: {why}" in notes, notes


def test_extended_signature_over_metadata_the_released_file_does_not_have(
    unsigned: Path, tmp_path: Path, run_cli
) -> None:
    """A stream's time changed after signing: the PKCS#7 still names the rebuild's hash, so
    without checking the released file's own metadata `archive.mtime` would pass a file
    whose signature Windows rejects."""
    released = sign_msi(unsigned, side(tmp_path, "rel"), dse=True)
    patch_entry(released, "\x05SummaryInformation", 0x6C, struct.pack("<Q", 1 << 56))
    assert not osslsigncode_verifies(released)
    code, rep = report(run_cli, "diff", released, unsigned, *RULES)
    assert code == 1
    refused(rep, "MsiDigitalSignatureEx is not the pre-hash of the released file's entry metadata")
    # and the other way round: the rebuild's metadata is not what the signer hashed
    rebuilt = side(tmp_path, "reb")
    shutil.copyfile(unsigned, rebuilt)
    patch_entry(rebuilt, "\x05SummaryInformation", 0x6C, struct.pack("<Q", 1 << 56))
    code, rep = report(run_cli, "diff", sign_msi(unsigned, side(tmp_path, "rel2"), dse=True),
                       rebuilt, *RULES)  # fmt: skip
    assert code == 1
    refused(rep, "the released file's entry metadata is not the rebuild's")


def test_extended_signature_stream_beside_a_signature_that_does_not_cover_it(
    unsigned: Path, tmp_path: Path, run_cli
) -> None:
    """A plain signature attached with a (correct) MsiDigitalSignatureEx stream beside it."""
    plain = sign_msi(unsigned, tmp_path / "plain.msi")
    sig = tmp_path / "plain.sig"
    subprocess.run(["osslsigncode", "extract-signature", "-in", str(plain), "-out", str(sig)],
                   check=True, capture_output=True)  # fmt: skip
    forged = side(tmp_path, "rel")
    subprocess.run(["osslsigncode", "attach-signature", "-add-msi-dse", "-sigin", str(sig),
                    "-in", str(unsigned), "-out", str(forged)],
                   check=False, capture_output=True)  # fmt: skip
    assert forged.exists() and not osslsigncode_verifies(forged)
    code, rep = report(run_cli, "diff", forged, unsigned, *RULES)
    assert code == 1
    refused(rep, "MSI signature")
    assert "covers different content" in " ".join(artifact(rep, "setup.msi")["notes"])


def test_stream_renamed_inside_a_storage(unsigned: Path, tmp_path: Path, run_cli) -> None:
    """One stream in a storage: its name is not in the MSI hash, so the signature still fits."""
    data = {"inner": b"transform\n"}
    released = sign_msi(repack_msi(unsigned, tmp_path / "u.msi", {"Sub": data}),
                        side(tmp_path, "rel"))  # fmt: skip
    rebuilt = repack_msi(unsigned, side(tmp_path, "reb"), {"Sub": {"other": data["inner"]}})
    code, rep = report(run_cli, "diff", released, rebuilt, *RULES)
    assert code == 1
    found = regions(artifact(rep, "setup.msi"))
    assert not found["ole.stream[Sub/inner]"]["allowed"]
    assert not found["ole.stream[Sub/other]"]["allowed"]


def test_storage_moved_keeps_the_hash_but_fails(unsigned: Path, tmp_path: Path, run_cli) -> None:
    """`Sub` renamed `Sua`: same order, same bytes, so the same MSI hash; the names differ."""
    streams = {"inner": b"transform\n", "zz": b"z" * 5000}
    base = repack_msi(unsigned, tmp_path / "u.msi", {"Sub": streams})
    released = sign_msi(base, side(tmp_path, "rel"))
    rebuilt = repack_msi(unsigned, side(tmp_path, "reb"), {"Sua": streams})
    assert hash_of(base) == hash_of(rebuilt)  # the signature cannot see the move
    assert osslsigncode_verifies(released)
    with released.open("rb") as fa, rebuilt.open("rb") as fb:
        listings = (listing_of(fa), listing_of(fb))
        with pytest.raises(VerificationError, match="holds other entries"):
            msisig.prove_msi_signature_only((released, rebuilt), listings, ())
    code, rep = report(run_cli, "diff", released, rebuilt, *RULES)
    assert code == 1
    found = regions(artifact(rep, "setup.msi"))
    assert {"ole.stream[Sub/]", "ole.stream[Sua/]", "ole.stream[Sub/inner]"} <= set(found)


def test_summary_bytes_hidden_after_the_declared_properties(
    unsigned: Path, tmp_path: Path, run_cli
) -> None:
    """Every property the rebuild's, and 16 bytes more that the section size counts."""
    data = summary(unsigned)
    hidden = data[:48] + struct.pack("<I", len(data) - 48 + 16) + data[52:] + b"hidden payload!!"
    released = repack_msi(unsigned, side(tmp_path, "rel"), {}, replace={SUMMARY: hidden})
    rebuilt = repack_msi(unsigned, side(tmp_path, "reb"), {})
    assert olefile.OleFileIO(str(released)).getproperties(SUMMARY) == olefile.OleFileIO(
        str(rebuilt)
    ).getproperties(SUMMARY)  # a lenient reader sees the same properties
    code, rep = report(run_cli, "diff", released, rebuilt, *RULES)
    assert code == 1
    outer = artifact(rep, "setup.msi")
    assert not regions(outer)["ole.stream[%05SummaryInformation].data"]["allowed"]
    assert "summary information compared as bytes: 16 byte(s) after the last property" in (
        " ".join(outer["notes"])
    )


def test_summary_property_with_the_same_id_twice(unsigned: Path, tmp_path: Path, run_cli) -> None:
    """The table's last id (security, 19) rewritten as 18 (the application name)."""
    data = bytearray(summary(unsigned))
    count = struct.unpack_from("<I", data, 52)[0]
    last = 56 + 8 * (count - 1)
    assert struct.unpack_from("<I", data, last)[0] == 19
    struct.pack_into("<I", data, last, 18)
    released = repack_msi(unsigned, side(tmp_path, "rel"), {}, replace={SUMMARY: bytes(data)})
    rebuilt = repack_msi(unsigned, side(tmp_path, "reb"), {})
    code, rep = report(run_cli, "diff", released, rebuilt, *RULES)
    assert code == 1
    outer = artifact(rep, "setup.msi")
    assert not regions(outer)["ole.stream[%05SummaryInformation].data"]["allowed"]
    assert "property 18 appears twice" in " ".join(outer["notes"])


@pytest.mark.parametrize(
    "case",
    [
        (0x3C, b"evil", "data after its name"),
        (0x43, b"A", "a colour other than red or black"),
        (0x7C, b"\x01\0\0\0", "data in the high half of its size"),
    ],
    ids=["name-slack", "colour", "size-high"],
)
def test_directory_entry_bytes_no_field_shows(
    unsigned: Path, tmp_path: Path, run_cli, case: tuple[int, bytes, str]
) -> None:
    """Bytes of a directory entry that olefile ignores and no field shows."""
    offset, data, reason = case
    released = side(tmp_path, "rel")
    shutil.copyfile(unsigned, released)
    patch_entry(released, "\x05SummaryInformation", offset, data)
    code, rep = report(run_cli, "diff", released, unsigned, *RULES)
    assert code == 1
    hidden = [d for d in artifact(rep, "setup.msi")["differences"]
              if d["region"] == "archive.hidden"]  # fmt: skip
    assert hidden and all(d["kind"] == "hidden" and not d["allowed"] for d in hidden)
    assert any(reason in d["detail"] for d in hidden), hidden


@pytest.mark.parametrize("where", ["in the extra sector", "in the last sector's slack"])
def test_stream_chain_longer_than_its_size_hides_bytes(
    unsigned: Path, tmp_path: Path, run_cli, where: str
) -> None:
    """One more sector chained after a stream's last: the size says the stream ends before, so
    nothing reads it. Data in it, or (the extra sector zero) in the real last sector's slack,
    which a slack check that takes the chain's last sector for the stream's would not see."""
    with olefile.OleFileIO(str(unsigned)) as ole:
        name = next(e.name for e in ole.direntries
                    if e is not None and e.entry_type == olefile.STGTY_STREAM
                    and e.size >= ole.minisectorcutoff and e.size % 512)  # fmt: skip
        entry = ole.direntries[ole._find(name)]
        chain, sect = [], entry.isectStart
        while sect < 0xFFFFFFF0:
            chain.append(sect)
            sect = ole.fat[sect]
        new, size = ole.nb_sect, entry.size
        fat_sector = struct.unpack_from("<I", unsigned.read_bytes(), 0x4C)[0]
        assert new < 128 and ole.sectorsize == 512, "the fixture's FAT has room in its first sector"
    blob = bytearray(unsigned.read_bytes())
    fat_at = (fat_sector + 1) * 512
    struct.pack_into("<I", blob, fat_at + 4 * chain[-1], new)
    struct.pack_into("<I", blob, fat_at + 4 * new, 0xFFFFFFFE)
    if where == "in the extra sector":
        blob += b"HIDDEN!!" * 64
    else:
        blob += bytes(512)
        slack = (chain[-1] + 1) * 512 + size % 512
        blob[slack : slack + 7] = b"HIDDEN!"
    released = side(tmp_path, "released")
    released.write_bytes(bytes(blob))
    with olefile.OleFileIO(str(released)) as ole, olefile.OleFileIO(str(unsigned)) as old:
        assert ole.openstream(name).read() == old.openstream(name).read()  # olefile reads it
    code, rep = report(run_cli, "diff", released, unsigned, *RULES)
    assert code == 1, rep
    hidden = [d for d in artifact(rep, "setup.msi")["differences"]
              if d["region"] == "archive.hidden"]  # fmt: skip
    assert hidden and not any(d["allowed"] for d in hidden)
    expected = {"sector after the end"}  # the extra sector, whatever it holds
    if where == "in the last sector's slack":
        expected.add("data after the end")
    assert {d["detail"].split(" of stream")[0] for d in hidden} == expected, hidden
