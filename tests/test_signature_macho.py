"""Mach-O ad-hoc code signatures (ld64.lld) and the strict DER reader under random input."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reprover.cli import main
from reprover.compare.signatures import der
from reprover.compare.signatures.macho import find_code_signature, prove_macho_signature_only
from reprover.errors import VerificationError
from signature_support import fx

ADHOC = fx("macho-adhoc").read_bytes()


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "engine"
    path.write_bytes(data)
    return path


def test_adhoc_signature_covers_rebuilt_pages(tmp_path: Path) -> None:
    rebuilt = write(tmp_path, ADHOC)
    proof = prove_macho_signature_only(fx("macho-adhoc"), rebuilt)
    (one,) = proof.slices
    assert one.identifier == "engine"
    assert one.hash_type == "sha256"
    assert one.pages == (find_code_signature(ADHOC, "m") or (0, 0))[0] // 4096 + 1
    assert one.flags & 0x2  # CS_ADHOC
    assert any("ad-hoc (no signer; integrity, not identity)" in f for f in proof.findings())
    assert [r.region for r in proof.regions][:2] == [
        "macho.code_signature.superblob",
        "macho.code_signature.code_directory",
    ]
    assert main(["sign-check", str(rebuilt), str(fx("macho-adhoc")), "-q"]) == 0


def test_unsigned_rebuild_cannot_prove_page_zero() -> None:
    with pytest.raises(VerificationError, match="-adhoc_codesign"):
        prove_macho_signature_only(fx("macho-adhoc"), fx("macho-unsigned"))


def test_changed_code_page_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changed = bytearray(ADHOC)
    changed[0x1000 + 2] ^= 0xFF
    rebuilt = write(tmp_path, bytes(changed))
    with pytest.raises(VerificationError, match="first differing byte at 0x1002"):
        prove_macho_signature_only(fx("macho-adhoc"), rebuilt)
    assert main(["sign-check", str(rebuilt), str(fx("macho-adhoc"))]) == 1
    assert "first differing byte" in capsys.readouterr().err


def test_forged_page_hash_fails(tmp_path: Path) -> None:
    off, size = find_code_signature(ADHOC, "m") or (0, 0)
    forged = bytearray(ADHOC)
    forged[off + size - 1] ^= 0x01  # last byte of the last page hash
    released = write(tmp_path, bytes(forged))
    with pytest.raises(VerificationError, match="page 2 hash"):
        prove_macho_signature_only(released, fx("macho-adhoc"))


def test_data_after_signature_fails(tmp_path: Path) -> None:
    released = write(tmp_path, ADHOC + b"payload!")
    with pytest.raises(VerificationError, match="does not end at end of file"):
        prove_macho_signature_only(released, fx("macho-adhoc"))


def test_data_hidden_after_superblob_fails(tmp_path: Path) -> None:
    off, size = find_code_signature(ADHOC, "m") or (0, 0)
    length = struct.unpack_from(">I", ADHOC, off + 4)[0]
    hidden = bytearray(ADHOC)
    struct.pack_into(">I", hidden, off + 4, length - 8)  # shrink the SuperBlob's own length
    released = write(tmp_path, bytes(hidden))
    with pytest.raises(VerificationError):
        prove_macho_signature_only(released, fx("macho-adhoc"))
    assert size >= length


def test_trusted_with_an_adhoc_signature_is_bad_input() -> None:
    """An ad-hoc signature names no signer: a pin cannot apply (exit 2, not 1)."""
    argv = ["sign-check", str(fx("macho-adhoc")), str(fx("macho-adhoc")), "-q"]
    assert main([*argv, "--trusted", str(fx("ca.pem"))]) == 2


@given(st.binary(max_size=64))
def test_der_reader_only_raises_der_error(data: bytes) -> None:
    try:
        root = der.parse_one(data, "fuzz")
        der.check_well_formed(root, "fuzz")
    except der.DerError:
        pass


def test_der_rejects_ber_and_bombs() -> None:
    with pytest.raises(der.DerError, match="indefinite"):
        der.parse_one(b"\x30\x80\x00\x00", "ber")
    with pytest.raises(der.DerError, match="long form used for a short length"):
        der.parse_one(b"\x04\x81\x01\x00", "len")
    nested = b"\x30\x00"
    for _ in range(100):
        nested = b"\x30" + _length(len(nested)) + nested
    with pytest.raises(der.DerError, match="deeper"):
        der.check_well_formed(der.parse_one(nested, "deep"), "deep")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw
