"""Authenticode signatures: SpcIndirectData over the image hash, timestamps, nested signatures.

Owns: `verify_authenticode`, which checks one PKCS#7 from a certificate table and every
signature nested in it (1.3.6.1.4.1.311.2.4.1): each is a SignedData held to the closed grammar
of `cms`, each SpcIndirectData names the same Authenticode hash (the rebuilt file's), each signer's
signed attributes verify with its certificate, each timestamp (RFC 3161 token or legacy PKCS#9
countersignature, see `timestamps`) dates that signer's signature, every carried certificate lies
on a signer's or countersigner's chain, and with pinned certificates every signer, nested ones
included, chains to one of them with the code-signing usage.
Also owns `verify_detached`, the generic check of a detached SignedData over given bytes (a
JAR's signature block over its `.SF` file), held to the same grammar and trust checks.
Does not own: where the PKCS#7 lies in a file or which digest the file must have (the caller
passes the Authenticode hash of the rebuilt file per algorithm), the CMS grammar (`cms`).

Unsigned attributes of an Authenticode signer are limited to an RFC 3161 token, a legacy
countersignature and nested signatures; anything else is refused and named with its offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from reprover.compare.signatures import cms, der, quoted
from reprover.compare.signatures.der import Tlv
from reprover.compare.signatures.timestamps import (
    COUNTERSIGNATURE,
    RFC3161_TOKEN,
    TIMESTAMP_TOKEN,
    Countersignature,
    checked_at,
    legacy_countersignature,
    rfc3161_token,
    timestamp_tokens,
)
from reprover.compare.signatures.trust import (
    CODE_SIGNING,
    chain_to_trust,
    require_on_chains,
)
from reprover.errors import VerificationError

SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"  # the signed content of an MSI signature
NESTED_SIGNATURE = "1.3.6.1.4.1.311.2.4.1"
MAX_NESTED = 8
AUTHENTICODE_UNSIGNED = frozenset({RFC3161_TOKEN, COUNTERSIGNATURE, NESTED_SIGNATURE})

PKCS7_DATA = "1.2.840.113549.1.7.1"

__all__ = [
    "NESTED_SIGNATURE",
    "Countersignature",
    "SignerDetails",
    "verify_authenticode",
    "verify_detached",
]


@dataclass(frozen=True)
class SignerDetails:
    """One verified Authenticode signature (outer or nested)."""

    label: str
    subject: str
    issuer: str
    serial: str
    digest_algorithm: str
    signature_algorithm: str
    content_digest: str
    chain: tuple[str, ...]
    countersignatures: tuple[Countersignature, ...]

    def describe(self) -> tuple[str, ...]:
        """The report's lines for this signer: who, over what, its chain and its timestamps."""
        lines = [
            f"{self.label}: subject {quoted(self.subject)}; issuer {quoted(self.issuer)}; "
            f"serial {self.serial}; digest {self.digest_algorithm}; "
            f"signature {self.signature_algorithm}; signed content {self.content_digest}",
            *(f"{self.label}: chain {link}" for link in self.chain),
        ]
        for c in self.countersignatures:
            lines.append(
                f"{self.label}: {c.kind} countersignature at {c.time.isoformat()} by {c.signer}"
                f"{' (pinned)' if c.trusted else ' (TSA not pinned)'}"
            )
            lines.extend(f"{self.label}: timestamp token carries {a}" for a in c.attribute_certs)
        return tuple(lines)


def verify_authenticode(
    blob: bytes,
    expected: Callable[[str], bytes],
    *,
    trusted: Sequence[x509.Certificate] = (),
    label: str = "signature",
    now: datetime | None = None,
    base: int = 0,
    content: str = SPC_PE_IMAGE_DATA,
) -> list[SignerDetails]:
    """Verify one Authenticode PKCS#7 and every signature nested in it.

    `content` is the SpcIndirectData type the signature must name: a PE image hash by
    default, `SPC_SIPINFO` for the hash of an MSI installer's streams.

    `expected(algorithm)` returns the Authenticode hash the signed content must name (hashlib
    algorithm name); every nested signature must name it too. With `trusted`, every signer,
    nested ones included, must chain to a pinned certificate with the code-signing usage,
    checked at a trusted timestamp's time or else at `now`; the error lists every signer that
    does not. `base` is the blob's file offset, for error messages.

    Raises:
        VerificationError: outside the grammar, a digest or signature does not match, an
            unsigned attribute is not allowed, or a signer is not trusted.
    """
    results: list[SignerDetails] = []
    unpinned: list[str] = []
    queue: list[tuple[bytes, str, int]] = [(blob, label, base)]
    while queue:
        data, what, offset = queue.pop(0)
        details, nested, missing = _verify_one(
            data, expected, trusted, what, now=now, base=offset, content=content
        )
        results.append(details)
        unpinned.extend(missing)
        queue.extend(
            (n.raw, f"{what} > nested #{i}", offset + n.start) for i, n in enumerate(nested)
        )
        if len(results) + len(queue) > MAX_NESTED:
            raise VerificationError(f"{label}: more than {MAX_NESTED} signatures in one entry")
    if unpinned:
        raise VerificationError(
            f"{len(unpinned)} of {len(results)} signers do not chain to a pinned certificate "
            "(with [signature] trusted every signer, nested ones included, must): "
            + "; ".join(unpinned),
            hint="pin the CA that issued each listed signer (or check who signed this file)",
        )
    return results


def verify_detached(
    blob: bytes,
    content: bytes,
    *,
    trusted: Sequence[x509.Certificate] = (),
    label: str = "signature",
    now: datetime | None = None,
) -> SignerDetails:
    """Verify a detached PKCS#7 SignedData over `content` (id-data, carried outside it).

    The SignedData carries no content of its own and no attribute certificates; its one
    signer's signed attributes bind `content`; its only unsigned attributes are RFC 3161
    timestamp tokens (`id-aa-timeStampToken`, as jarsigner -tsa adds), each verified over the
    signer's signature (`timestamps.rfc3161_token`); every certificate it carries lies on the
    signer's chain. With `trusted`, the signer chains to a pinned certificate with the
    code-signing usage, checked at a trusted timestamp's time or else at `now`.

    Raises:
        VerificationError: outside the grammar, the digest or signature does not match, or the
            signer is not trusted.
    """
    sd = cms.parse_signed_data(blob, label)
    if sd.content_type != PKCS7_DATA or sd.content is not None:
        raise VerificationError(
            f"{label}: not a detached signature (content type {sd.content_type}, "
            f"{'with' if sd.content is not None else 'without'} content of its own)"
        )
    if sd.attribute_certs:
        raise VerificationError(f"{label}: carries attribute certificates (refused here)")
    signer = cms.verify_signer_info(sd, content, PKCS7_DATA, frozenset({TIMESTAMP_TOKEN}), label)
    stamps = timestamp_tokens(sd, signer, trusted, label)
    require_on_chains(sd.certs, [signer.cert], label)
    chain: tuple[str, ...] = ()
    if trusted:
        at = checked_at(stamps, now)
        chain = chain_to_trust(
            signer.cert, sd.certs, trusted, usage=CODE_SIGNING, at=at, what=label
        )
    digest = f"{signer.digest}:{cms.hash_bytes(signer.digest, content).hex()}"
    return _details(signer, label, digest, chain, stamps)


def _details(
    signer: cms.Signer,
    label: str,
    content_digest: str,
    chain: tuple[str, ...],
    stamps: Sequence[Countersignature],
) -> SignerDetails:
    """What a report says of one verified signer."""
    cert = signer.cert
    return SignerDetails(
        label=label,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        digest_algorithm=signer.digest,
        signature_algorithm=cms.SIGNATURE_NAMES.get(
            signer.signature_algorithm, signer.signature_algorithm
        ),
        content_digest=content_digest,
        chain=chain,
        countersignatures=tuple(stamps),
    )


def _verify_one(
    blob: bytes,
    expected: Callable[[str], bytes],
    trusted: Sequence[x509.Certificate],
    what: str,
    *,
    now: datetime | None,
    base: int,
    content: str = SPC_PE_IMAGE_DATA,
) -> tuple[SignerDetails, list[Tlv], list[str]]:
    sd = cms.parse_signed_data(blob, what, base=base)
    if sd.content_type != SPC_INDIRECT_DATA or sd.content is None:
        raise VerificationError(f"{what}: content is {sd.content_type}, not SpcIndirectData")
    spc = der.sequence(sd.content, what, minimum=2, maximum=2)
    data_kind = der.sequence(spc[0], what, minimum=1, maximum=2)
    if der.oid(data_kind[0], what) != content:
        kind = "a PE image hash" if content == SPC_PE_IMAGE_DATA else f"of type {content}"
        raise VerificationError(f"{what}: the signed content is not {kind}")
    digest_alg, digest_value = der.sequence(spc[1], what, minimum=2, maximum=2)
    algorithm = cms.digest_name(cms.algorithm(digest_alg, what), what)
    claimed = der.octets(digest_value, what)
    actual = expected(algorithm)
    if claimed != actual:
        raise VerificationError(
            f"{what}: the signed Authenticode {algorithm} digest {claimed.hex()} is not "
            f"{actual.hex()}, the digest of what it must cover (the rebuilt file; for an "
            "installer whose members were proven on their own, its released streams): the "
            "signature covers different content"
        )
    signer = cms.verify_signer_info(
        sd, sd.content.content, SPC_INDIRECT_DATA, AUTHENTICODE_UNSIGNED, what
    )
    stamps, nested = _unsigned(sd, signer, trusted, what)
    chain: tuple[str, ...] = ()
    missing: list[str] = []
    if trusted:
        at = checked_at(stamps, now)
        try:
            chain = chain_to_trust(
                signer.cert, sd.certs, trusted, usage=CODE_SIGNING, at=at, what=what
            )
        except VerificationError as exc:
            missing.append(exc.message)
    details = _details(signer, what, f"{algorithm}:{claimed.hex()}", chain, stamps)
    return details, nested, missing


def _unsigned(
    sd: cms.SignedData,
    signer: cms.Signer,
    trusted: Sequence[x509.Certificate],
    what: str,
) -> tuple[list[Countersignature], list[Tlv]]:
    """Verify the signer's timestamps; return them and the nested signatures left to check.

    Every certificate of the SignedData must serve the signer or a PKCS#9 countersigner.
    """
    signers = [signer.cert]
    stamps: list[Countersignature] = []
    nested: list[Tlv] = []
    for name, values in signer.unsigned:
        for i, value in enumerate(values):
            label = f"{what}, unsigned attribute {name} #{i}"
            if name == NESTED_SIGNATURE:
                nested.append(value)
            elif name == RFC3161_TOKEN:
                stamps.append(rfc3161_token(value, sd, signer, trusted, label))
            else:
                stamp, cert = legacy_countersignature(value, sd, signer, trusted, label)
                stamps.append(stamp)
                signers.append(cert)
    require_on_chains(sd.certs, signers, what)
    return stamps, nested
