"""Every tampering in issue 5 must fail with exit 1 and say why, in the library and the CLI."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprover.cli import main
from reprover.compare.signatures import der
from reprover.compare.signatures.authenticode import prove_signature_only
from reprover.compare.signatures.pe_certtable import read_layout
from reprover.compare.signatures.pkcs7 import NESTED_SIGNATURE
from reprover.errors import VerificationError
from signature_support import (
    entry,
    find_path,
    first_pkcs7,
    fx,
    replace_in_der,
    set_table_fields,
    table_of,
    unsigned_part,
    with_table,
)

SIGNED = fx("signed.exe").read_bytes()
UNSIGNED = fx("unsigned.exe").read_bytes()
CA = fx("ca.pem")


def cve_2013_3900(payload: bytes) -> bytes:
    """Append data inside the certificate area, raising dwLength and the directory size."""
    layout = read_layout(SIGNED, "s")
    out = bytearray(SIGNED + payload)
    struct.pack_into("<I", out, layout.table_offset, len(out) - layout.table_offset)
    return set_table_fields(bytes(out), size=len(out) - layout.table_offset)


def truncated_pkcs7() -> bytes:
    blob = first_pkcs7(SIGNED)
    return with_table(UNSIGNED, entry(blob[: len(blob) // 2]))


def garbage_pkcs7() -> bytes:
    return with_table(UNSIGNED, entry(bytes(range(256)) * 4))


def valid_der_not_pkcs7() -> bytes:
    # ContentInfo { id-data, [0] OCTET STRING "AB" }: DER, but not SignedData
    return with_table(UNSIGNED, entry(bytes.fromhex("301106092a864886f70d010701a00404024142")))


def copied_signature() -> bytes:
    return with_table(UNSIGNED, table_of(fx("other-signed.exe").read_bytes()))


def one_byte_in_signed_range() -> bytes:
    out = bytearray(SIGNED)
    out[0x400 + 3] ^= 0x01  # inside .text
    return bytes(out)


def second_entry_other_content() -> bytes:
    other = first_pkcs7(fx("other-signed.exe").read_bytes())
    return with_table(UNSIGNED, entry(first_pkcs7(SIGNED)) + entry(other))


def nested_other_content() -> bytes:
    """A dual signature whose nested one signs another program (DER surgery on dual.exe)."""
    dual = fx("dual.exe").read_bytes()
    outer = first_pkcs7(dual)
    root = der.parse_one(outer, "dual")

    def is_nested_value(node: der.Tlv) -> bool:
        if not node.is_(der.UNIVERSAL, True, der.SEQUENCE):
            return False
        kids = node.children("s")
        return (
            len(kids) == 2
            and kids[0].is_(der.UNIVERSAL, False, der.OID)
            and der.oid(kids[0], "s") == NESTED_SIGNATURE
        )

    path = find_path(root, is_nested_value)
    value_set = path[-1].children("s")[1]
    (value,) = value_set.children("s")
    other = first_pkcs7(fx("other-signed.exe").read_bytes())
    forged = replace_in_der(outer, [*path, value_set, value], other)
    return with_table(unsigned_part(dual), entry(forged))


def outside_file() -> bytes:
    return set_table_fields(SIGNED, offset=len(SIGNED) + 0x100)


def huge_size() -> bytes:
    return set_table_fields(SIGNED, size=0xFFFFFFF0)


CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "cve-2013-3900 payload": (lambda: cve_2013_3900(b"EVIL" * 8), "CVE-2013-3900"),
    "cve-2013-3900 zeros": (lambda: cve_2013_3900(b"\0" * 16), "beyond its padding"),
    "data after table": (lambda: SIGNED + b"PAYLOAD!", "follow the certificate table"),
    "copied signature": (copied_signature, "covers different content"),
    "altered byte": (one_byte_in_signed_range, "first differing byte at 0x403"),
    "truncated pkcs7": (truncated_pkcs7, "claims"),
    "garbage pkcs7": (garbage_pkcs7, "PKCS#7"),
    "der but not pkcs7": (valid_der_not_pkcs7, "not a PKCS#7 SignedData"),
    "table outside file": (outside_file, "points outside the file"),
    "table size overflow": (huge_size, "points outside the file"),
    "second entry other content": (second_entry_other_content, "signature #1.*different"),
    "nested other content": (nested_other_content, "nested #0.*covers different content"),
    "wrong revision": (
        lambda: (
            SIGNED[: read_layout(SIGNED, "s").table_offset + 4]
            + b"\x00\x01"
            + SIGNED[read_layout(SIGNED, "s").table_offset + 6 :]
        ),
        "wRevision",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tampering_fails_with_reason(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, reason = CASES[name]
    bad = tmp_path / "bad.exe"
    bad.write_bytes(make())
    with pytest.raises(VerificationError, match=reason):
        prove_signature_only(bad, fx("unsigned.exe"), trusted=(CA,))
    assert main(["sign-check", str(fx("unsigned.exe")), str(bad), "--trusted", str(CA)]) == 1
    captured = capsys.readouterr()
    assert "different" in captured.out
    assert "[FAIL] authenticode" in captured.out
    assert any(line for line in captured.err.splitlines() if "sign-check" in line)


@pytest.mark.parametrize(
    ("signed", "reason"),
    [
        ("foreign.exe", "does not chain to a pinned certificate"),
        ("noeku.exe", "lacks the 1.3.6.1.5.5.7.3.3 extended key usage"),
    ],
)
def test_untrusted_signer_fails(signed: str, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        prove_signature_only(fx(signed), fx("unsigned.exe"), trusted=(CA,))
    argv = ["sign-check", str(fx("unsigned.exe")), str(fx(signed)), "--trusted", str(CA), "-q"]
    assert main(argv) == 1


def test_signature_of_other_build_does_not_prove_this_one() -> None:
    with pytest.raises(VerificationError, match="outside the signature"):
        prove_signature_only(fx("signed.exe"), fx("other-unsigned.exe"))


def test_rebuilt_file_must_be_unsigned() -> None:
    with pytest.raises(VerificationError, match="rebuilt file already"):
        prove_signature_only(fx("signed.exe"), fx("signed.exe"))


def test_unsigned_release_is_not_signature_only() -> None:
    with pytest.raises(VerificationError, match="not signed"):
        prove_signature_only(fx("unsigned.exe"), fx("unsigned.exe"))


def test_stray_certificate_is_refused() -> None:
    """A certificate no signer uses is unverified data riding in the signature."""
    blob = first_pkcs7(SIGNED)
    root = der.parse_one(blob, "s")
    content = root.children("s")[1]
    signed_data = der.explicit(content, 0, "s")
    certs = signed_data.children("s")[3]
    path = [root, content, signed_data, certs]
    (leaf,) = certs.children("s")
    stray = der.parse_one(
        __import__("base64").b64decode(
            b"".join(fx("other-ca.pem").read_bytes().splitlines()[1:-1])
        ),
        "ca",
    )
    forged = replace_in_der(blob, [*path, leaf], leaf.raw + stray.raw)
    bad = with_table(UNSIGNED, entry(forged))
    with pytest.raises(VerificationError, match="issued no signer"):
        _prove_bytes(bad)


def _prove_bytes(data: bytes, trusted: tuple[Path, ...] = ()) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.exe"
        bad.write_bytes(data)
        prove_signature_only(bad, fx("unsigned.exe"), trusted=trusted)


TIMESTAMPED = fx("timestamped.exe").read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.floats(min_value=0, max_value=1, exclude_max=True), st.integers(1, 255))
def test_any_flipped_byte_is_caught(stamped: bool, where: float, xor: int) -> None:
    """With pinned trust, flipping any byte of a signed file (outside the checksum) breaks a
    proof, and nothing but `VerificationError` escapes, even deep inside the PKCS#7."""
    data = TIMESTAMPED if stamped else SIGNED
    layout = read_layout(data, "s")
    # half the flips land in the certificate table, where the parsers work hardest
    offset = int(where * len(data))
    if where < 0.5:
        offset = layout.table_offset + int(where * 2 * layout.table_size)
    if layout.checksum_offset <= offset < layout.checksum_offset + 4:
        return
    out = bytearray(data)
    out[offset] ^= xor
    with pytest.raises(VerificationError):
        _prove_bytes(bytes(out), trusted=(CA,))
