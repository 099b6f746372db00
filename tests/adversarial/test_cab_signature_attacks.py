"""Attacks on the CAB signature proof: a signed cabinet that is not its rebuild plus a signature.

Each is a vendor trying to make `reprover diff --allow signature` (every archive rule allowed
too) call a cabinet `signature-only` when it carries something else. Cabinets are made by gcab
and signed by osslsigncode; where osslsigncode's own `verify` still accepts the forged file,
the test says so: only the byte-for-byte comparison with the rebuild stops it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    flip_code_byte,
    regions,
    report,
    write_cab,
)
from reprover.compare.archives.cabsig import (
    SPC_CAB_DATA,
    cab_hash,
    prove_cab_signature_only,
    signed_head,
    unsigned_layout,
)
from reprover.compare.archives.listing import Listing
from reprover.compare.signatures import der
from reprover.compare.signatures.pkcs7 import verify_authenticode
from reprover.errors import VerificationError
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    shutil.which("gcab") is None or shutil.which("osslsigncode") is None,
    reason="gcab and osslsigncode are installed by .ci/apt-packages.txt",
)
SIG = FIXTURES / "signature"
DLL = (FIXTURES / "ledger" / "pe-mingw-timestamp" / "a").read_bytes()
FILES = {"engine.dll": DLL, "readme.txt": b"engine 1.0\n" * 50}
RULES = ("signature", "archive.mtime", "archive.order", "archive.owner", "archive.mode",
         "archive.compression")  # fmt: skip
ALLOW = [x for r in RULES for x in ("--allow", r)]
SIZE_AT, SIG_AT, SIG_LEN_AT = 8, 44, 48  # cbCabinet; the reserve's signature offset and size


@pytest.fixture(scope="module")
def cabs(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(the unsigned rebuild, the same cabinet signed by osslsigncode)."""
    root = tmp_path_factory.mktemp("cabs")
    unsigned = write_cab(root / "u.cab", FILES)
    osslsign(unsigned, root / "s.cab", "leaf")
    return unsigned.read_bytes(), (root / "s.cab").read_bytes()


def _attack(tmp_path: Path, run_cli, released: bytes, rebuilt: bytes) -> tuple[dict, str]:
    """Run `diff` on the pair; return the cabinet's artifact and every note and detail in it."""
    for side, data in (("rel", released), ("reb", rebuilt)):
        (tmp_path / side).mkdir(exist_ok=True)
        (tmp_path / side / "x.cab").write_bytes(data)
    code, rep = report(run_cli, "diff", tmp_path / "rel" / "x.cab", tmp_path / "reb" / "x.cab",
                       *ALLOW)  # fmt: skip
    assert code == 1, rep
    outer = artifact(rep, "x.cab")
    assert outer["verdict"] == "different"
    text = " ".join([*outer["notes"], *(str(d.get("detail")) for d in outer["differences"])])
    return outer, text


def _prove(tmp_path: Path, released: bytes, rebuilt: bytes) -> str:
    """The proof alone on the pair: it must refuse; return why."""
    a, b = tmp_path / "proof-rel.cab", tmp_path / "proof-reb.cab"
    a.write_bytes(released)
    b.write_bytes(rebuilt)
    empty = Listing("cab", "cab.file")
    with pytest.raises(VerificationError) as refused:
        prove_cab_signature_only((a, b), (empty, empty), ())
    return refused.value.message


def _oracle_accepts(tmp_path: Path, data: bytes) -> bool:
    """Whether osslsigncode's own verify accepts `data` (the Windows-style check)."""
    path = tmp_path / "oracle.cab"
    path.write_bytes(data)
    done = subprocess.run(["osslsigncode", "verify", "-CAfile", str(SIG / "ca.pem"), "-in",
                           str(path)], capture_output=True, text=True, check=False)  # fmt: skip
    return done.returncode == 0


def _set(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def test_member_changed_and_signed_over_the_released_content(tmp_path, run_cli) -> None:
    """The vendor signs the backdoored cabinet: the signature is valid for what was released,
    but the digest must be the rebuild's, so neither the comparison nor the proof accepts it.
    Stored (uncompressed) cabinets, so the layouts agree and only the byte differs."""
    rebuilt = write_cab(tmp_path / "u.cab", FILES, compress=False).read_bytes()
    evil = {**FILES, "engine.dll": flip_code_byte(DLL)}
    osslsign(write_cab(tmp_path / "evil.cab", evil, compress=False), tmp_path / "s.cab", "leaf")
    released = (tmp_path / "s.cab").read_bytes()
    assert len(released) - len(rebuilt) == struct.unpack_from("<I", released, SIG_LEN_AT)[0] + 24
    assert _oracle_accepts(tmp_path, released)
    outer, _ = _attack(tmp_path, run_cli, released, rebuilt)
    assert not regions(outer)["cab.file[engine.dll].data"]["allowed"]
    assert artifact(report(run_cli, "diff", tmp_path / "rel" / "x.cab", tmp_path / "reb" / "x.cab")
                    [1], "x.cab!engine.dll")["verdict"] == "different"  # fmt: skip
    assert "differs from the rebuild's signed layout" in _prove(tmp_path, released, rebuilt)
    # and the digest check alone, on the rebuild's CAB hash, refuses the same signature
    at, length = struct.unpack_from("<II", released, SIG_AT)
    blob = der.read_tlv(released, at, at + length, "pkcs7").raw
    with (tmp_path / "u.cab").open("rb") as f:
        layout = unsigned_layout(f, len(rebuilt))
        head = signed_head(f, layout, length)
        body = rebuilt[layout.coff_files :]
    with pytest.raises(VerificationError, match="covers different content"):
        verify_authenticode(blob, lambda alg: cab_hash(head, iter([body]), alg),
                            content=SPC_CAB_DATA)  # fmt: skip


def test_bytes_hidden_in_the_signature_reserve(cabs, tmp_path, run_cli) -> None:
    """Bytes 52..55, the reserve's zero bytes the CAB hash skips, carry data."""
    rebuilt, signed = cabs
    released = signed[:52] + b"EVIL" + signed[56:]
    assert _oracle_accepts(tmp_path, released)  # unhashed: the signature still verifies
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    assert "signature-only refused" in text
    assert "at offset 52 (the signature reserve's zero bytes)" in text


@pytest.mark.parametrize("inside", [False, True], ids=["after its size", "inside its size"])
def test_bytes_after_the_signature(cabs, tmp_path, run_cli, inside: bool) -> None:
    """Data after the PKCS#7: beyond the declared signature size, or counted in it."""
    rebuilt, signed = cabs
    released = signed + bytes(16)
    if inside:
        length = struct.unpack_from("<I", signed, SIG_LEN_AT)[0]
        released = _set(released, SIG_LEN_AT, "<I", length + 16)
        assert _oracle_accepts(tmp_path, released)  # zeros after the DER: still verifies
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    if inside:
        assert "signature-only refused" in text and "not the signer's zero padding" in text
    else:
        assert "bytes after the cabinet" in text
        assert "does not end at the end of the released file" in _prove(tmp_path, released, rebuilt)


def test_signature_offset_points_inside_the_data(cabs, tmp_path, run_cli) -> None:
    """The reserve says the signature starts at the file entries: it overlaps them."""
    rebuilt, signed = cabs
    start = struct.unpack_from("<I", signed, 16)[0]  # coffFiles
    released = _set(signed, SIG_AT, "<II", start, len(signed) - start)
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    assert "overlaps" in text
    assert "is not the end of the rebuild as signed" in _prove(tmp_path, released, rebuilt)


def test_second_signature_in_the_signature_area(cabs, tmp_path, run_cli) -> None:
    """Two PKCS#7 blobs, one after the other, both inside the declared signature size."""
    rebuilt, signed = cabs
    at, length = struct.unpack_from("<II", signed, SIG_AT)
    released = _set(signed + signed[at:], SIG_LEN_AT, "<I", 2 * length)
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    assert "signature-only refused" in text and "not the signer's zero padding" in text


def test_cabinet_size_claims_the_signature(cabs, tmp_path, run_cli) -> None:
    """cbCabinet stretched over the signature (regions overlapping in the header's claims)."""
    rebuilt, signed = cabs
    released = _set(signed, SIZE_AT, "<I", len(signed))
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    # cbCabinet must be the cabinet's size (the signature's offset): hidden before any proof
    assert f"cbCabinet {len(signed)} is not the cabinet's size" in text
    assert "at offset 8 (cbCabinet)" in _prove(tmp_path, released, rebuilt)


def test_signed_rebuild(cabs, tmp_path, run_cli) -> None:
    """A rebuild that is itself signed (by another key) is no unsigned rebuild to prove from."""
    rebuilt, signed = cabs
    (tmp_path / "u.cab").write_bytes(rebuilt)
    osslsign(tmp_path / "u.cab", tmp_path / "other.cab", "other-leaf")
    _, text = _attack(tmp_path, run_cli, signed, (tmp_path / "other.cab").read_bytes())
    assert "signature-only refused" in text and "compare an unsigned rebuild" in text


@pytest.mark.parametrize(
    "case",  # (offset, new bytes, the reason reported)
    [
        (30, b"\x14\x00", "at offset 30 (flags)"),  # the reserve flag plus an undefined bit
        (34, b"\x07\x00", "cab.header.index"),  # iCabinet: unhashed
        (4, b"EVIL", "reserved header field at 4 is not zero"),  # reserved1: unhashed
        (12, b"EVIL", "reserved header field at 12 is not zero"),  # reserved2
    ],
    ids=["flag other than the reserve flag", "iCabinet", "reserved1", "reserved2"],
)
def test_header_fields_signing_does_not_touch(
    cabs, tmp_path, run_cli, case: tuple[int, bytes, str]
) -> None:
    offset, value, reason = case
    rebuilt, signed = cabs
    released = signed[:offset] + value + signed[offset + len(value) :]
    if offset == 34:
        assert _oracle_accepts(tmp_path, released)  # unhashed: the signature still verifies
    outer, text = _attack(tmp_path, run_cli, released, rebuilt)
    assert reason in text or (reason in regions(outer) and not regions(outer)[reason]["allowed"])
    assert "released header differs" in _prove(tmp_path, released, rebuilt)


def test_set_id_changed_and_signed(cabs, tmp_path, run_cli) -> None:
    """setID (hashed) changed before signing: a valid signature over another header."""
    rebuilt, _ = cabs
    (tmp_path / "set.cab").write_bytes(_set(rebuilt, 32, "<H", 0x4242))
    osslsign(tmp_path / "set.cab", tmp_path / "set-signed.cab", "leaf")
    released = (tmp_path / "set-signed.cab").read_bytes()
    assert _oracle_accepts(tmp_path, released)
    outer, _ = _attack(tmp_path, run_cli, released, rebuilt)
    assert not regions(outer)["cab.header.setid"]["allowed"]
    assert "at offset 32 (setID)" in _prove(tmp_path, released, rebuilt)


def test_signature_transplanted_from_another_cabinet(cabs, tmp_path, run_cli) -> None:
    """A valid signature of another cabinet attached to the rebuild (osslsigncode
    attach-signature): the layout is right, the signed digest is not the rebuild's."""
    rebuilt, _ = cabs
    donor = write_cab(tmp_path / "donor.cab", {**FILES, "readme.txt": b"another release\n"})
    osslsign(donor, tmp_path / "donor-signed.cab", "leaf")
    (tmp_path / "u.cab").write_bytes(rebuilt)
    sig, forged = tmp_path / "donor.sig", tmp_path / "forged.cab"
    subprocess.run(["osslsigncode", "extract-signature", "-in", str(tmp_path / "donor-signed.cab"),
                    "-out", str(sig)], check=True, capture_output=True)  # fmt: skip
    subprocess.run(["osslsigncode", "attach-signature", "-sigin", str(sig), "-in",
                    str(tmp_path / "u.cab"), "-out", str(forged)], check=False,
                   capture_output=True)  # fmt: skip
    assert forged.exists()
    _, text = _attack(tmp_path, run_cli, forged.read_bytes(), rebuilt)
    assert "signature-only refused" in text and "covers different content" in text


def test_reserved_header_fields_of_an_unsigned_cabinet_carry_data(tmp_path, run_cli) -> None:
    """reserved1 and reserved3 hold 8 bytes, beside a file time allowed by `archive.mtime`:
    no field showed them, so the cabinet was `equivalent` (a false pass before cabfmt)."""
    rebuilt = write_cab(tmp_path / "u.cab", FILES).read_bytes()
    later = write_cab(tmp_path / "t.cab", FILES, mtime=1_600_000_000).read_bytes()
    released = later[:4] + b"EVIL" + later[8:20] + b"DATA" + later[24:]
    _, text = _attack(tmp_path, run_cli, released, rebuilt)
    assert "reserved header field at 4 is not zero" in text
    assert "reserved header field at 20 is not zero" in text
