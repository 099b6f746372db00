"""Issue 12 item 3: unsigned bytes hidden inside an Authenticode signature, each refused by name.

Every attack is DER surgery on a real osslsigncode signature, run through the real CLI
(`reprover sign-check UNSIGNED SIGNED --trusted CA`), and must exit 1 naming what it refused
(the element and its file offset).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from reprover.cli import main
from reprover.compare.signatures import der
from reprover.compare.signatures.pkcs7 import NESTED_SIGNATURE
from reprover.compare.signatures.timestamps import RFC3161_TOKEN
from signature_support import (
    encode,
    entry,
    find_path,
    first_pkcs7,
    fx,
    oid_der,
    replace_in_der,
    unsigned_part,
    with_table,
)

SIGNED = fx("signed.exe").read_bytes()
STAMPED = fx("timestamped.exe").read_bytes()
UNSIGNED = fx("unsigned.exe").read_bytes()
PAYLOAD = encode(0x04, b"EVIL" * 1024)  # a 4 KiB OCTET STRING
UNKNOWN_ATTR = encode(0x30, oid_der("1.2.3.4.5") + encode(0x31, PAYLOAD))


def _signed_data_path(blob: bytes) -> list[der.Tlv]:
    root = der.parse_one(blob, "s")
    content = root.children("s")[1]
    return [root, content, der.explicit(content, 0, "s")]


def _resign(source: bytes, forged: bytes) -> bytes:
    return with_table(unsigned_part(source), entry(forged))


def _attribute_path(blob: bytes, oid: str) -> list[der.Tlv]:
    def match(node: der.Tlv) -> bool:
        if not node.is_(der.UNIVERSAL, True, der.SEQUENCE):
            return False
        kids = node.children("s")
        return (
            len(kids) == 2
            and kids[0].is_(der.UNIVERSAL, False, der.OID)
            and der.oid(kids[0], "s") == oid
        )

    return find_path(der.parse_one(blob, "s"), match)


def digest_algorithms_payload() -> bytes:
    blob = first_pkcs7(SIGNED)
    path = _signed_data_path(blob)
    algs = path[-1].children("s")[1]
    (alg,) = algs.children("s")
    extra = encode(0x30, oid_der("2.16.840.1.101.3.4.2.1") + PAYLOAD)
    return _resign(SIGNED, replace_in_der(blob, [*path, algs, alg], alg.raw + extra))


def digest_algorithm_parameters_payload() -> bytes:
    blob = first_pkcs7(SIGNED)
    path = _signed_data_path(blob)
    algs = path[-1].children("s")[1]
    (alg,) = algs.children("s")
    forged = encode(0x30, oid_der("2.16.840.1.101.3.4.2.1") + PAYLOAD)
    return _resign(SIGNED, replace_in_der(blob, [*path, algs, alg], forged))


def _add_unsigned(blob: bytes, signer_path: list[der.Tlv]) -> bytes:
    signer = signer_path[-1]
    kids = signer.children("s")
    if kids[-1].is_(der.CONTEXT, True, 1):
        last = kids[-1]
        return replace_in_der(blob, [*signer_path, last], encode(0xA1, last.content + UNKNOWN_ATTR))
    return replace_in_der(
        blob, signer_path, encode(0x30, signer.content + encode(0xA1, UNKNOWN_ATTR))
    )


def unknown_unsigned_attribute() -> bytes:
    blob = first_pkcs7(SIGNED)
    path = _signed_data_path(blob)
    infos = path[-1].children("s")[-1]
    (signer,) = infos.children("s")
    return _resign(SIGNED, _add_unsigned(blob, [*path, infos, signer]))


def token_unsigned_attribute() -> bytes:
    blob = first_pkcs7(STAMPED)
    path = _attribute_path(blob, RFC3161_TOKEN)
    values = path[-1].children("s")[1]
    (token,) = values.children("s")
    content = token.children("s")[1]
    signed_data = der.explicit(content, 0, "s")
    infos = signed_data.children("s")[-1]
    (signer,) = infos.children("s")
    inner = [*path, values, token, content, signed_data, infos, signer]
    return _resign(STAMPED, _add_unsigned(blob, inner))


def countersignature_unsigned_attribute() -> bytes:
    legacy = fx("legacy-stamped.exe").read_bytes()
    blob = first_pkcs7(legacy)
    path = _attribute_path(blob, "1.2.840.113549.1.9.6")
    values = path[-1].children("s")[1]
    (counter,) = values.children("s")
    return _resign(legacy, _add_unsigned(blob, [*path, values, counter]))


def countersignature_over_another_signature() -> bytes:
    """The legacy countersignature of one signature (and its TSA certificate) grafted onto
    another signer's."""
    legacy = first_pkcs7(fx("legacy-stamped.exe").read_bytes())
    attr = _attribute_path(legacy, "1.2.840.113549.1.9.6")[-1]
    tsa = _signed_data_path(legacy)[-1].children("s")[3].children("s")[-1]
    foreign = fx("foreign.exe").read_bytes()
    blob = first_pkcs7(foreign)
    path = _signed_data_path(blob)
    infos = path[-1].children("s")[-1]
    (signer,) = infos.children("s")
    with_attr = encode(0x30, signer.content + encode(0xA1, attr.raw))
    blob = replace_in_der(blob, [*path, infos, signer], with_attr)
    path = _signed_data_path(blob)
    certs = path[-1].children("s")[3]
    blob = replace_in_der(blob, [*path, certs], encode(0xA0, certs.content + tsa.raw))
    return _resign(foreign, blob)


def revocation_lists() -> bytes:
    blob = first_pkcs7(SIGNED)
    path = _signed_data_path(blob)
    certs = path[-1].children("s")[3]
    crl = encode(0xA1, encode(0x30, PAYLOAD))
    return _resign(SIGNED, replace_in_der(blob, [*path, certs], certs.raw + crl))


def two_signer_infos() -> bytes:
    blob = first_pkcs7(SIGNED)
    path = _signed_data_path(blob)
    infos = path[-1].children("s")[-1]
    (signer,) = infos.children("s")
    return _resign(SIGNED, replace_in_der(blob, [*path, infos, signer], signer.raw * 2))


def nested_over_other_image() -> bytes:
    dual = fx("dual.exe").read_bytes()
    blob = first_pkcs7(dual)
    path = _attribute_path(blob, NESTED_SIGNATURE)
    values = path[-1].children("s")[1]
    (value,) = values.children("s")
    other = first_pkcs7(fx("other-signed.exe").read_bytes())
    return _resign(dual, replace_in_der(blob, [*path, values, value], other))


def oversized_attribute_certificate() -> bytes:
    blob = first_pkcs7(STAMPED)
    path = _attribute_path(blob, RFC3161_TOKEN)
    values = path[-1].children("s")[1]
    (token,) = values.children("s")
    content = token.children("s")[1]
    signed_data = der.explicit(content, 0, "s")
    certs = signed_data.children("s")[3]
    fake = encode(0xA1, encode(0x30, PAYLOAD) + encode(0x30, oid_der("1.2.840.113549.1.1.11")))
    inner = [*path, values, token, content, signed_data, certs]
    return _resign(STAMPED, replace_in_der(blob, inner, encode(0xA0, certs.content + fake)))


ATTACKS: dict[str, tuple[Callable[[], bytes], str]] = {
    "4 KiB in SignedData.digestAlgorithms": (
        digest_algorithms_payload,
        r"SignedData.digestAlgorithms at file offset 0x[0-9a-f]+ holds 2 entries",
    ),
    "4 KiB as digest algorithm parameters": (
        digest_algorithm_parameters_payload,
        "unexpected algorithm parameters",
    ),
    "unknown unsigned attribute": (
        unknown_unsigned_attribute,
        r"unsigned attribute 1\.2\.3\.4\.5 at file offset 0x[0-9a-f]+ is not allowed",
    ),
    "unsigned attribute in the RFC 3161 token's SignerInfo": (
        token_unsigned_attribute,
        r"1\.3\.6\.1\.4\.1\.311\.3\.3\.1 #0: unsigned attribute 1\.2\.3\.4\.5 at file offset",
    ),
    "unsigned attribute in a legacy countersignature": (
        countersignature_unsigned_attribute,
        r"1\.2\.840\.113549\.1\.9\.6 #0: unsigned attribute 1\.2\.3\.4\.5 at file offset",
    ),
    "legacy countersignature of another signature": (
        countersignature_over_another_signature,
        "messageDigest attribute does not match",
    ),
    "CRLs": (revocation_lists, r"SignedData.crls at file offset 0x[0-9a-f]+"),
    "two SignerInfos": (two_signer_infos, "2 SignerInfos at file offset"),
    "nested signature over another image": (
        nested_over_other_image,
        "nested #0: the signed Authenticode sha256 digest .* covers different content",
    ),
    "4 KiB attribute certificate in a token": (
        oversized_attribute_certificate,
        r"attribute certificate at file offset 0x[0-9a-f]+: \d+ bytes \(at most 2048",
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_unsigned_bytes_in_authenticode_are_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, reason = ATTACKS[name]
    bad = tmp_path / "bad.exe"
    bad.write_bytes(make())
    argv = ["sign-check", str(fx("unsigned.exe")), str(bad), "--trusted", str(fx("ca.pem"))]
    argv += ["--trusted", str(fx("other-ca.pem"))]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "[FAIL] authenticode" in captured.out
    assert re.search(reason, captured.err), captured.err
