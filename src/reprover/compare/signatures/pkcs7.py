"""Authenticode PKCS#7 SignedData: decode strictly, verify cryptographically, explain.

Owns: the SignedData / SignerInfo / SpcIndirectDataContent structures of an Authenticode
signature, the check that the signed attributes verify with the signer certificate and that
their messageDigest is the hash of the SpcIndirectData content, RFC 3161 and legacy PKCS#9
countersignatures (verified, their time reported), nested signatures
(1.3.6.1.4.1.311.2.4.1, each verified like the outer one) and pinning through
`reprover.compare.signatures.trust`.
Does not own: where the PKCS#7 lies in a file or which digest the file must have (the caller
passes the Authenticode hash of the rebuilt file per algorithm).

Unsigned data is where payloads hide, so it is held to a closed list: every unsigned attribute
must be a countersignature, an RFC 3161 token or a nested signature, each verified; every
certificate must be an X.509 certificate; CRLs and unknown choices are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reprover.compare.signatures import der
from reprover.compare.signatures.der import CONTEXT, SEQUENCE, SET, UNIVERSAL, DerError, Tlv
from reprover.compare.signatures.trust import (
    CODE_SIGNING,
    TIME_STAMPING,
    chain_to_trust,
    describe,
    require_on_chains,
)
from reprover.errors import VerificationError

SIGNED_DATA = "1.2.840.113549.1.7.2"
SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
RFC3161_TOKEN = "1.3.6.1.4.1.311.3.3.1"  # noqa: S105 - an OID, not a password
NESTED_SIGNATURE = "1.3.6.1.4.1.311.2.4.1"
MAX_NESTED = 8

DIGESTS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "1.3.14.3.2.26": ("sha1", hashes.SHA1),
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
}
# signature algorithm -> (key type, digest it implies or None for "the signer's digest")
SIGNATURES: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.1": ("rsa", None),
    "1.2.840.113549.1.1.5": ("rsa", "sha1"),
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.2.1": ("ec", None),
    "1.2.840.10045.4.1": ("ec", "sha1"),
    "1.2.840.10045.4.3.2": ("ec", "sha256"),
    "1.2.840.10045.4.3.3": ("ec", "sha384"),
    "1.2.840.10045.4.3.4": ("ec", "sha512"),
}

SIGNATURE_NAMES = {
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.10045.2.1": "ecPublicKey",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
}


@dataclass(frozen=True)
class Countersignature:
    """A verified timestamp over a signature: when, by whom, and whether pinned trust covers it."""

    kind: str
    time: datetime
    signer: str
    trusted: bool


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


@dataclass(frozen=True)
class _Signer:
    cert: x509.Certificate
    digest: str
    signature: bytes
    signed: tuple[tuple[str, tuple[Tlv, ...]], ...]
    unsigned: tuple[tuple[str, tuple[Tlv, ...]], ...]
    signature_algorithm: str


def _alg(tlv: Tlv, what: str) -> str:
    items = der.sequence(tlv, what, minimum=1, maximum=2)
    if len(items) == 2 and not items[1].is_(UNIVERSAL, False, der.NULL):
        raise DerError(f"{what}: unexpected algorithm parameters")
    return der.oid(items[0], what)


def _digest_name(oid: str, what: str) -> str:
    if oid not in DIGESTS:
        raise VerificationError(f"{what}: unsupported digest algorithm {oid}")
    return DIGESTS[oid][0]


def _hash(name: str, data: bytes) -> bytes:
    algorithm = next(h for n, h in DIGESTS.values() if n == name)()
    ctx = hashes.Hash(algorithm)
    ctx.update(data)
    return ctx.finalize()


def _attributes(tlv: Tlv, what: str) -> dict[str, tuple[Tlv, ...]]:
    out: dict[str, tuple[Tlv, ...]] = {}
    for attr in tlv.children(what):
        kind, values = der.sequence(attr, what, minimum=2, maximum=2)
        name = der.oid(kind, what)
        if name in out:
            raise VerificationError(f"{what}: attribute {name} appears twice")
        vals = tuple(values.expect(UNIVERSAL, True, SET, what).children(what))
        if not vals:
            raise VerificationError(f"{what}: attribute {name} has no value")
        out[name] = vals
    return out


def _single(attrs: dict[str, tuple[Tlv, ...]], name: str, what: str) -> Tlv:
    values = attrs.get(name)
    if values is None or len(values) != 1:
        raise VerificationError(f"{what}: signed attribute {name} missing or not single-valued")
    return values[0]


def _verify_raw(
    cert: x509.Certificate, sig_alg: str, digest: str, *, sig: bytes, data: bytes, what: str
) -> None:
    key_type, implied = SIGNATURES.get(sig_alg, ("", None))
    if not key_type or (implied is not None and implied != digest):
        raise VerificationError(f"{what}: unsupported signature algorithm {sig_alg}")
    algorithm = next(h for n, h in DIGESTS.values() if n == digest)()
    key = cert.public_key()
    try:
        if key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), algorithm)
        elif key_type == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(algorithm))
        else:
            raise VerificationError(f"{what}: key of {describe(cert)} does not match {sig_alg}")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise VerificationError(
            f"{what}: the signature over the signed attributes does not verify with the signer "
            f"certificate {describe(cert)}"
        ) from exc


def _signer_info(
    tlv: Tlv,
    certs: Sequence[x509.Certificate],
    content: bytes,
    content_type: str | None,
    what: str,
) -> _Signer:
    """Check one SignerInfo: signed attributes bind `content`, and verify with its cert."""
    items = der.sequence(tlv, what, minimum=5, maximum=7)
    version = der.integer(items[0], what)
    sid = items[1]
    if version == 1 and sid.is_(UNIVERSAL, True, SEQUENCE):
        name, serial = der.sequence(sid, what, minimum=2, maximum=2)
        number = der.integer(serial, what)
        cert = next(
            (c for c in certs if c.serial_number == number and c.issuer.public_bytes() == name.raw),
            None,
        )
    elif version == 3 and sid.is_(CONTEXT, False, 0):
        ski = sid.content
        cert = next((c for c in certs if _ski(c) == ski), None)
    else:
        raise VerificationError(f"{what}: unsupported SignerInfo version {version}")
    if cert is None:
        raise VerificationError(f"{what}: the signer's certificate is not in the signature")
    digest = _digest_name(_alg(items[2], what), what)
    pos = 3
    if not items[pos].is_(CONTEXT, True, 0):
        raise VerificationError(f"{what}: no signed attributes (required by Authenticode)")
    signed_raw = items[pos]
    signed = _attributes(signed_raw, what)
    pos += 1
    sig_alg = _alg(items[pos], what)
    sig = der.octets(items[pos + 1], what)
    pos += 2
    unsigned: dict[str, tuple[Tlv, ...]] = {}
    if pos < len(items):
        unsigned = _attributes(items[pos].expect(CONTEXT, True, 1, what), what)
        pos += 1
    if pos != len(items):
        raise DerError(f"{what}: unexpected fields after the SignerInfo")
    if content_type is not None:
        got = der.oid(_single(signed, CONTENT_TYPE, what), what)
        if got != content_type:
            raise VerificationError(f"{what}: signed contentType {got} is not {content_type}")
    claimed = der.octets(_single(signed, MESSAGE_DIGEST, what), what)
    if claimed != _hash(digest, content):
        raise VerificationError(
            f"{what}: the messageDigest attribute does not match the signed content"
        )
    to_verify = b"\x31" + signed_raw.raw[1:]
    _verify_raw(cert, sig_alg, digest, sig=sig, data=to_verify, what=what)
    return _Signer(cert, digest, sig, tuple(signed.items()), tuple(unsigned.items()), sig_alg)


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True)
class _SignedData:
    content_type: str
    content: Tlv
    certs: tuple[x509.Certificate, ...]
    signer: Tlv


def _signed_data(blob: bytes, what: str) -> _SignedData:
    root = der.parse_one(blob, what)
    der.check_well_formed(root, what)
    kind, body = der.sequence(root, f"{what}: not a PKCS#7 ContentInfo", minimum=2, maximum=2)
    if der.oid(kind, what) != SIGNED_DATA:
        raise VerificationError(f"{what}: not a PKCS#7 SignedData")
    sd = der.explicit(body, 0, what)
    items = der.sequence(sd, what, minimum=4, maximum=6)
    if der.integer(items[0], what) not in (1, 3):
        raise VerificationError(f"{what}: unsupported SignedData version")
    items[1].expect(UNIVERSAL, True, SET, what)
    encap = der.sequence(items[2], what, minimum=2, maximum=2)
    content_type = der.oid(encap[0], what)
    content = der.explicit(encap[1], 0, what)
    certs: list[x509.Certificate] = []
    rest = items[3:]
    if rest and rest[0].is_(CONTEXT, True, 0):
        for child in rest[0].children(what):
            child.expect(UNIVERSAL, True, SEQUENCE, f"{what}: certificate")
            try:
                certs.append(x509.load_der_x509_certificate(child.raw))
            except ValueError as exc:
                raise VerificationError(f"{what}: a certificate does not parse: {exc}") from exc
        rest = rest[1:]
    if rest and rest[0].is_(CONTEXT, True, 1):
        raise VerificationError(f"{what}: CRLs inside the signature are not supported")
    if len(rest) != 1:
        raise DerError(f"{what}: unexpected fields in SignedData")
    signers = rest[0].expect(UNIVERSAL, True, SET, what).children(what)
    if len(signers) != 1:
        raise VerificationError(f"{what}: {len(signers)} SignerInfos (Authenticode needs one)")
    return _SignedData(content_type, content, tuple(certs), signers[0])


def _timestamps(
    signer: _Signer,
    certs: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    what: str,
) -> tuple[list[Countersignature], list[Tlv]]:
    """Verify countersignatures; return them and the nested signatures left to check.

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
                stamps.append(_rfc3161(value.raw, signer, trusted, label))
            elif name == COUNTERSIGNATURE:
                counter = _signer_info(value, certs, signer.signature, None, label)
                signers.append(counter.cert)
                attrs = dict(counter.signed)
                when = der.time(_single(attrs, "1.2.840.113549.1.9.5", label), label)
                stamps.append(_stamp("pkcs9-countersignature", when, counter, certs, trusted))
            else:
                raise VerificationError(
                    f"{label}: unknown unsigned attribute; refusing it because unsigned data is "
                    "not covered by the signature"
                )
    require_on_chains(certs, signers, what)
    return stamps, nested


def _stamp(
    kind: str,
    when: datetime,
    counter: _Signer,
    certs: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
) -> Countersignature:
    ok = False
    if trusted:
        try:
            chain_to_trust(counter.cert, certs, trusted, usage=TIME_STAMPING, at=when, what="tsa")
            ok = True
        except VerificationError:
            ok = False
    return Countersignature(kind, when, describe(counter.cert), ok)


def _rfc3161(
    blob: bytes, signer: _Signer, trusted: Sequence[x509.Certificate], what: str
) -> Countersignature:
    sd = _signed_data(blob, what)
    if sd.content_type != TST_INFO:
        raise VerificationError(f"{what}: the timestamp token does not hold a TSTInfo")
    tst_bytes = der.octets(sd.content, what)
    counter = _signer_info(sd.signer, sd.certs, tst_bytes, TST_INFO, what)
    require_on_chains(sd.certs, [counter.cert], what)
    tst = der.sequence(der.parse_one(tst_bytes, what), what, minimum=5)
    imprint_alg, imprint = der.sequence(tst[2], what, minimum=2, maximum=2)
    alg = _digest_name(_alg(imprint_alg, what), what)
    if der.octets(imprint, what) != _hash(alg, signer.signature):
        raise VerificationError(f"{what}: the timestamp covers a different signature")
    return _stamp("rfc3161", der.time(tst[4], what), counter, sd.certs, trusted)


def verify_authenticode(
    blob: bytes,
    expected: Callable[[str], bytes],
    *,
    trusted: Sequence[x509.Certificate] = (),
    label: str = "signature",
    now: datetime | None = None,
) -> list[SignerDetails]:
    """Verify one Authenticode PKCS#7 and every signature nested in it.

    `expected(algorithm)` returns the Authenticode hash the signed content must name (hashlib
    algorithm name). With `trusted`, each signer must chain to a pinned certificate with the
    code-signing usage, checked at a trusted timestamp's time or else at `now`.

    Raises:
        VerificationError: malformed, a digest or signature does not match, an unsigned
            attribute is unknown, or a signer is not trusted.
    """
    results: list[SignerDetails] = []
    queue: list[tuple[bytes, str]] = [(blob, label)]
    while queue:
        data, what = queue.pop(0)
        details, nested = _verify_one(data, expected, trusted, what, now)
        results.append(details)
        queue.extend((n.raw, f"{what} > nested #{i}") for i, n in enumerate(nested))
        if len(results) + len(queue) > MAX_NESTED:
            raise VerificationError(f"{label}: more than {MAX_NESTED} signatures in one entry")
    return results


def _verify_one(
    blob: bytes,
    expected: Callable[[str], bytes],
    trusted: Sequence[x509.Certificate],
    what: str,
    now: datetime | None,
) -> tuple[SignerDetails, list[Tlv]]:
    sd = _signed_data(blob, what)
    if sd.content_type != SPC_INDIRECT_DATA:
        raise VerificationError(f"{what}: content is {sd.content_type}, not SpcIndirectData")
    spc = der.sequence(sd.content, what, minimum=2, maximum=2)
    data_kind = der.sequence(spc[0], what, minimum=1, maximum=2)
    if der.oid(data_kind[0], what) != SPC_PE_IMAGE_DATA:
        raise VerificationError(f"{what}: the signed content is not a PE image hash")
    digest_alg, digest_value = der.sequence(spc[1], what, minimum=2, maximum=2)
    algorithm = _digest_name(_alg(digest_alg, what), what)
    claimed = der.octets(digest_value, what)
    actual = expected(algorithm)
    if claimed != actual:
        raise VerificationError(
            f"{what}: the signed Authenticode {algorithm} digest {claimed.hex()} is not the "
            f"rebuilt file's {actual.hex()}: the signature covers different content"
        )
    signer = _signer_info(sd.signer, sd.certs, sd.content.content, SPC_INDIRECT_DATA, what)
    stamps, nested = _timestamps(signer, sd.certs, trusted, what)
    chain: tuple[str, ...] = ()
    if trusted:
        at = next((s.time for s in stamps if s.trusted), now or datetime.now(timezone.utc))
        chain = chain_to_trust(signer.cert, sd.certs, trusted, usage=CODE_SIGNING, at=at, what=what)
    cert = signer.cert
    details = SignerDetails(
        label=what,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        digest_algorithm=signer.digest,
        signature_algorithm=SIGNATURE_NAMES.get(
            signer.signature_algorithm, signer.signature_algorithm
        ),
        content_digest=f"{algorithm}:{claimed.hex()}",
        chain=chain,
        countersignatures=tuple(stamps),
    )
    return details, nested
