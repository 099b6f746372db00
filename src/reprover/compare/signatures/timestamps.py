"""Timestamps over a signature: RFC 3161 tokens and legacy PKCS#9 countersignatures.

Owns: verifying a timestamp held in a signer's unsigned attributes (the token's own SignedData
held to the closed grammar of `cms`, its SignerInfo with no unsigned attribute at all, its
TSTInfo decoded field by field with no extensions, the message imprint equal to the hash of the
countersigned signature) and deciding whether pinned trust covers the TSA.
Does not own: the CMS grammar (`cms`) or which signer the timestamp dates (`pkcs7`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509

from reprover.compare.signatures import cms, der
from reprover.compare.signatures.der import CONTEXT, UNIVERSAL, DerError, Tlv
from reprover.compare.signatures.trust import (
    TIME_STAMPING,
    chain_to_trust,
    describe,
    require_on_chains,
)
from reprover.errors import VerificationError

TST_INFO = "1.2.840.113549.1.9.16.1.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
RFC3161_TOKEN = "1.3.6.1.4.1.311.3.3.1"  # noqa: S105 - an OID, not a password
TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # noqa: S105 - id-aa-timeStampToken, an OID
BOOLEAN = 0x01
MAX_TSA_NAME = 1024
MAX_ACCURACY = 32


@dataclass(frozen=True)
class Countersignature:
    """A verified timestamp over a signature: when, by whom, and whether pinned trust covers it."""

    kind: str
    time: datetime
    signer: str
    trusted: bool
    attribute_certs: tuple[str, ...] = ()


def _trusted(
    cert: x509.Certificate,
    pool: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    when: datetime,
) -> bool:
    if not anchors:
        return False
    try:
        chain_to_trust(cert, pool, anchors, usage=TIME_STAMPING, at=when, what="tsa")
    except VerificationError:
        return False
    return True


def legacy_countersignature(
    value: Tlv,
    sd: cms.SignedData,
    signer: cms.Signer,
    anchors: Sequence[x509.Certificate],
    what: str,
) -> tuple[Countersignature, x509.Certificate]:
    """Verify a PKCS#9 countersignature (a SignerInfo over `signer`'s signature).

    Returns the timestamp and the countersigner's certificate (which must then lie on a chain
    of the SignedData's certificates).

    Raises:
        VerificationError: malformed, not over this signature, or carrying unsigned attributes.
    """
    counter = cms.verify_signer_info(
        sd, signer.signature, None, frozenset(), what, tlv=value, certs=sd.certs
    )
    when = der.time(cms.single(dict(counter.signed), SIGNING_TIME, what), what)
    stamp = Countersignature(
        "pkcs9-countersignature",
        when,
        describe(counter.cert),
        _trusted(counter.cert, sd.certs, anchors, when),
    )
    return stamp, counter.cert


def rfc3161_token(
    value: Tlv,
    parent: cms.SignedData,
    signer: cms.Signer,
    anchors: Sequence[x509.Certificate],
    what: str,
) -> Countersignature:
    """Verify an RFC 3161 token (Microsoft's unsigned attribute 1.3.6.1.4.1.311.3.3.1).

    Raises:
        VerificationError: outside the grammar, or the token dates another signature.
    """
    sd = cms.parse_signed_data(value.raw, what, base=parent.base + value.start)
    if sd.content_type != TST_INFO or sd.content is None:
        raise VerificationError(f"{what}: the timestamp token does not hold a TSTInfo")
    tst_bytes = der.octets(sd.content, what)
    counter = cms.verify_signer_info(sd, tst_bytes, TST_INFO, frozenset(), what)
    require_on_chains(sd.certs, [counter.cert], what)
    alg, imprint, when = _tst_info(tst_bytes, what)
    if imprint != cms.hash_bytes(alg, signer.signature):
        raise VerificationError(f"{what}: the timestamp covers a different signature")
    return Countersignature(
        "rfc3161",
        when,
        describe(counter.cert),
        _trusted(counter.cert, sd.certs, anchors, when),
        sd.attribute_certs,
    )


def _tst_info(data: bytes, what: str) -> tuple[str, bytes, datetime]:
    """Decode a TSTInfo: (imprint algorithm, imprint, genTime); extensions are refused."""
    fields = der.sequence(der.parse_one(data, what), f"{what}: TSTInfo", minimum=5, maximum=10)
    if der.integer(fields[0], what) != 1:
        raise VerificationError(f"{what}: TSTInfo version is not 1")
    der.oid(fields[1], what)
    imprint_alg, imprint = der.sequence(fields[2], what, minimum=2, maximum=2)
    alg = cms.digest_name(cms.algorithm(imprint_alg, what), what)
    der.integer(fields[3], what)
    when = der.time(fields[4], what)
    # accuracy, ordering, nonce, tsa: each optional, in this order
    optional = [
        lambda t: t.is_(UNIVERSAL, True, der.SEQUENCE) and t.end - t.start <= MAX_ACCURACY,
        lambda t: t.is_(UNIVERSAL, False, BOOLEAN),
        lambda t: t.is_(UNIVERSAL, False, der.INTEGER),
        lambda t: t.is_(CONTEXT, True, 0) and t.end - t.start <= MAX_TSA_NAME,
    ]
    for extra in fields[5:]:
        while optional and not optional[0](extra):
            optional.pop(0)
        if not optional:
            raise DerError(
                f"{what}: TSTInfo field at offset {extra.start} (tag class {extra.cls} number "
                f"{extra.number}) is not a bounded accuracy, ordering, nonce or tsa name; "
                "extensions are refused"
            )
        optional.pop(0)
    return alg, der.octets(imprint, what), when


def timestamp_tokens(
    sd: cms.SignedData, signer: cms.Signer, anchors: Sequence[x509.Certificate], what: str
) -> list[Countersignature]:
    """Verify each RFC 3161 token of `signer` in the standard unsigned attribute
    (id-aa-timeStampToken: CMS, a JAR's block, a Mach-O signature) over its signature.

    Raises:
        VerificationError: a token is outside the grammar or dates another signature.
    """
    return [
        rfc3161_token(value, sd, signer, anchors, f"{what}, timestamp #{i}")
        for oid, values in signer.unsigned
        if oid == TIMESTAMP_TOKEN
        for i, value in enumerate(values)
    ]


def checked_at(stamps: Sequence[Countersignature], now: datetime | None) -> datetime:
    """When a signer's certificates are checked: a pinned timestamp's time, else `now`."""
    return next((s.time for s in stamps if s.trusted), now or datetime.now(timezone.utc))
