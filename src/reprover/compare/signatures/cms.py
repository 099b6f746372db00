"""The CMS / PKCS#7 SignedData grammar, closed: every byte is signed or has one allowed meaning.

Owns: decoding a SignedData strictly (`parse_signed_data`), the SignerInfo and its signature
(`verify_signer_info`), attribute sets, the certificate set (X.509 certificates, and the
attribute certificates real timestamp authorities include: parsed, bounded, reported, never
trusted) and the digest and signature
algorithm tables. Authenticode (`pkcs7`), timestamps (`timestamps`) and Apple's CMS over a
CodeDirectory (`macho_cms`) build on it.
Does not own: what the signed content means, which unsigned attributes a given signer may carry
(callers pass the allowed OIDs), or trust (`trust`).

The grammar, for the parts no signature covers:

- `digestAlgorithms` holds exactly one AlgorithmIdentifier, the signer's digest algorithm;
- `certificates` holds at most `MAX_CERTS` entries of at most `MAX_CERT_BYTES` each: X.509
  certificates, or at most `MAX_ATTRIBUTE_CERTS` `[1]`/`[2]` attribute certificates of at most
  `MAX_ATTRIBUTE_CERT_BYTES` each, parsed field by field and reported with their digest (their
  issuer's certificate is not carried, so their signature cannot be checked; never trusted);
- `crls` is refused (not parsed here, so not accepted);
- `signerInfos` holds exactly one SignerInfo, whose unsigned attributes are limited to the OIDs
  the caller allows, each value held to its own grammar by the caller.

Errors name the offending element's file offset (`base` + its offset in the blob).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reprover.compare.signatures import der
from reprover.compare.signatures.der import CONTEXT, SEQUENCE, SET, UNIVERSAL, DerError, Tlv
from reprover.compare.signatures.trust import describe
from reprover.errors import VerificationError

SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
MAX_CERTS = 32
MAX_CERT_BYTES = 16 * 1024
MAX_ATTRIBUTE_CERTS = 2
MAX_ATTRIBUTE_CERT_BYTES = 2048

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

Attributes = tuple[tuple[str, tuple[Tlv, ...]], ...]


@dataclass(frozen=True)
class SignedData:
    """A decoded SignedData. `base` is the file offset of the blob's first byte."""

    base: int
    content_type: str
    content: Tlv | None
    certs: tuple[x509.Certificate, ...]
    attribute_certs: tuple[str, ...]
    digest_algorithm: str
    signer: Tlv


@dataclass(frozen=True)
class Signer:
    """A SignerInfo whose signature over its signed attributes verified."""

    cert: x509.Certificate
    digest: str
    signature: bytes
    signed: Attributes
    unsigned: Attributes
    signature_algorithm: str


def at(tlv: Tlv, base: int) -> str:
    """`at file offset 0x...` for an element of a blob that starts at `base`."""
    return f"at file offset {base + tlv.start:#x}"


def algorithm(tlv: Tlv, what: str) -> str:
    """An AlgorithmIdentifier's OID; parameters must be absent or NULL.

    Raises:
        DerError: another shape.
    """
    items = der.sequence(tlv, what, minimum=1, maximum=2)
    if len(items) == 2 and not items[1].is_(UNIVERSAL, False, der.NULL):
        raise DerError(f"{what}: unexpected algorithm parameters")
    return der.oid(items[0], what)


def digest_name(oid: str, what: str) -> str:
    """The hashlib name of a digest OID.

    Raises:
        VerificationError: not a supported digest.
    """
    if oid not in DIGESTS:
        raise VerificationError(f"{what}: unsupported digest algorithm {oid}")
    return DIGESTS[oid][0]


def hash_bytes(name: str, data: bytes) -> bytes:
    """`data` hashed with the named digest."""
    ctx = hashes.Hash(next(h for n, h in DIGESTS.values() if n == name)())
    ctx.update(data)
    return ctx.finalize()


def attributes(tlv: Tlv, what: str) -> dict[str, tuple[Tlv, ...]]:
    """An attribute set: each OID once, each with at least one value.

    Raises:
        VerificationError: malformed, repeated or empty attributes.
    """
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


def single(attrs: dict[str, tuple[Tlv, ...]], name: str, what: str) -> Tlv:
    """The one value of a required single-valued attribute.

    Raises:
        VerificationError: missing or multi-valued.
    """
    values = attrs.get(name)
    if values is None or len(values) != 1:
        raise VerificationError(f"{what}: signed attribute {name} missing or not single-valued")
    return values[0]


def verify_raw(
    cert: x509.Certificate, sig_alg: str, digest: str, *, sig: bytes, data: bytes, what: str
) -> None:
    """Check `sig` over `data` with `cert`'s key.

    Raises:
        VerificationError: unsupported algorithm or the signature does not verify.
    """
    key_type, implied = SIGNATURES.get(sig_alg, ("", None))
    if not key_type or (implied is not None and implied != digest):
        raise VerificationError(f"{what}: unsupported signature algorithm {sig_alg}")
    algo = next(h for n, h in DIGESTS.values() if n == digest)()
    key = cert.public_key()
    try:
        if key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), algo)
        elif key_type == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(algo))
        else:
            raise VerificationError(f"{what}: key of {describe(cert)} does not match {sig_alg}")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise VerificationError(
            f"{what}: the signature does not verify with the certificate {describe(cert)}"
        ) from exc


def parse_signed_data(blob: bytes, what: str, *, base: int = 0) -> SignedData:
    """Decode a ContentInfo holding a SignedData, held to the closed grammar above.

    Raises:
        VerificationError: malformed or outside the grammar; the message names the offset.
    """
    root = der.parse_one(blob, what)
    der.check_well_formed(root, what)
    kind, body = der.sequence(root, f"{what}: not a PKCS#7 ContentInfo", minimum=2, maximum=2)
    if der.oid(kind, what) != SIGNED_DATA:
        raise VerificationError(f"{what}: not a PKCS#7 SignedData")
    items = der.sequence(der.explicit(body, 0, what), what, minimum=4, maximum=6)
    if der.integer(items[0], what) not in (1, 3):
        raise VerificationError(f"{what}: unsupported SignedData version")
    algs = items[1].expect(UNIVERSAL, True, SET, what).children(what)
    if len(algs) != 1:
        raise VerificationError(
            f"{what}: SignedData.digestAlgorithms {at(items[1], base)} holds {len(algs)} "
            "entries; only the signer's one digest algorithm is accepted (unsigned bytes)"
        )
    digest = algorithm(algs[0], f"{what}: SignedData.digestAlgorithms")
    encap = der.sequence(items[2], what, minimum=1, maximum=2)
    content = der.explicit(encap[1], 0, what) if len(encap) == 2 else None
    rest = items[3:]
    certs: tuple[x509.Certificate, ...] = ()
    attr_certs: tuple[str, ...] = ()
    if rest and rest[0].is_(CONTEXT, True, 0):
        certs, attr_certs = _certificates(rest[0], what, base)
        rest = rest[1:]
    if rest and rest[0].is_(CONTEXT, True, 1):
        raise VerificationError(
            f"{what}: SignedData.crls {at(rest[0], base)}: revocation lists are not parsed "
            "here, so they are refused (unsigned bytes)"
        )
    if len(rest) != 1:
        raise DerError(f"{what}: unexpected fields in SignedData")
    signers = rest[0].expect(UNIVERSAL, True, SET, what).children(what)
    if len(signers) != 1:
        raise VerificationError(
            f"{what}: {len(signers)} SignerInfos {at(rest[0], base)} (exactly one is accepted)"
        )
    return SignedData(base, der.oid(encap[0], what), content, certs, attr_certs, digest, signers[0])


def _certificates(
    tlv: Tlv, what: str, base: int
) -> tuple[tuple[x509.Certificate, ...], tuple[str, ...]]:
    entries = tlv.children(what)
    if len(entries) > MAX_CERTS:
        raise VerificationError(f"{what}: {len(entries)} certificates (at most {MAX_CERTS})")
    certs: list[x509.Certificate] = []
    attribute: list[Tlv] = []
    for child in entries:
        if child.end - child.start > MAX_CERT_BYTES:
            raise VerificationError(
                f"{what}: certificate {at(child, base)} is {child.end - child.start} bytes "
                f"(at most {MAX_CERT_BYTES})"
            )
        if child.is_(UNIVERSAL, True, SEQUENCE):
            try:
                certs.append(x509.load_der_x509_certificate(child.raw))
            except ValueError as exc:
                raise VerificationError(
                    f"{what}: the certificate {at(child, base)} does not parse: {exc}"
                ) from exc
        elif child.is_(CONTEXT, True, 1) or child.is_(CONTEXT, True, 2):
            attribute.append(child)
        else:
            raise VerificationError(
                f"{what}: certificate set entry {at(child, base)} (tag class {child.cls} number "
                f"{child.number}) is neither an X.509 nor an attribute certificate"
            )
    if len(attribute) > MAX_ATTRIBUTE_CERTS:
        raise VerificationError(
            f"{what}: {len(attribute)} attribute certificates (at most {MAX_ATTRIBUTE_CERTS})"
        )
    names = tuple(_attribute_certificate(a, what, base) for a in attribute)
    return tuple(certs), names


def _attribute_certificate(tlv: Tlv, what: str, base: int) -> str:
    """Check an attribute certificate's shape and size; describe it for the report.

    Real timestamp authorities (Microsoft's) include one whose issuer's certificate is not in
    the set, so its signature cannot be checked: it is parsed, bounded and reported, never
    trusted and never used to build a chain.
    """
    label = f"{what}: attribute certificate {at(tlv, base)}"
    size = tlv.end - tlv.start
    if size > MAX_ATTRIBUTE_CERT_BYTES:
        raise VerificationError(
            f"{label}: {size} bytes (at most {MAX_ATTRIBUTE_CERT_BYTES} are accepted)"
        )
    parts = tlv.children(label)
    if len(parts) != 3:
        raise VerificationError(f"{label}: expected acInfo, signatureAlgorithm and signature")
    info, sig_alg_tlv, sig_tlv = parts
    fields = der.sequence(info, label, minimum=6, maximum=9)
    if fields[0].is_(UNIVERSAL, False, der.INTEGER):
        der.integer(fields[0], label)
        fields = fields[1:]
    holder, issuer, inner_alg, serial, validity, attrs, *extra = fields
    if not (holder.constructed and issuer.constructed):
        raise VerificationError(f"{label}: malformed holder or issuer")
    if algorithm(inner_alg, label) != algorithm(sig_alg_tlv, label):
        raise VerificationError(f"{label}: inner and outer signature algorithms differ")
    der.integer(serial, label)
    for when in der.sequence(validity, label, minimum=2, maximum=2):
        der.time(when, label)
    for attr in der.sequence(attrs, label):
        name, values = der.sequence(attr, label, minimum=2, maximum=2)
        der.oid(name, label)
        values.expect(UNIVERSAL, True, SET, label)
    if len(extra) > 1 or any(not e.is_(UNIVERSAL, True, SEQUENCE) for e in extra):
        raise VerificationError(f"{label}: unexpected fields after the attributes")
    bits = sig_tlv.expect(UNIVERSAL, False, der.BIT_STRING, label).content
    if not bits or bits[0] != 0:
        raise VerificationError(f"{label}: malformed signature BIT STRING")
    digest = hashlib.sha256(tlv.raw).hexdigest()
    return (
        f"an unverified attribute certificate ({size} bytes {at(tlv, base)}, sha256 {digest}; "
        "parsed and bounded, never trusted)"
    )


def verify_signer_info(
    sd: SignedData,
    content: bytes,
    content_type: str | None,
    allowed_unsigned: frozenset[str],
    what: str,
    *,
    tlv: Tlv | None = None,
    certs: Sequence[x509.Certificate] | None = None,
) -> Signer:
    """Check a SignerInfo (`sd.signer`, or `tlv` for a countersignature): its signed attributes
    bind `content` (and `content_type`) and verify with its certificate, its digest is the
    SignedData's and its unsigned attributes are among `allowed_unsigned`.

    Raises:
        VerificationError: any of these fails; unknown attributes are named with their offset.
    """
    node = sd.signer if tlv is None else tlv
    pool = sd.certs if certs is None else certs
    items = der.sequence(node, what, minimum=5, maximum=7)
    version = der.integer(items[0], what)
    sid = items[1]
    if version == 1 and sid.is_(UNIVERSAL, True, SEQUENCE):
        name, serial = der.sequence(sid, what, minimum=2, maximum=2)
        number = der.integer(serial, what)
        cert = next(
            (c for c in pool if c.serial_number == number and c.issuer.public_bytes() == name.raw),
            None,
        )
    elif version == 3 and sid.is_(CONTEXT, False, 0):
        cert = next((c for c in pool if _ski(c) == sid.content), None)
    else:
        raise VerificationError(f"{what}: unsupported SignerInfo version {version}")
    if cert is None:
        raise VerificationError(f"{what}: the signer's certificate is not in the signature")
    digest_oid = algorithm(items[2], what)
    digest = digest_name(digest_oid, what)
    if tlv is None and digest_oid != sd.digest_algorithm:
        raise VerificationError(
            f"{what}: the signer's digest {digest} is not the one SignedData.digestAlgorithms lists"
        )
    if not items[3].is_(CONTEXT, True, 0):
        raise VerificationError(f"{what}: no signed attributes (required here)")
    signed_raw = items[3]
    signed = attributes(signed_raw, what)
    sig_alg = algorithm(items[4], what)
    sig = der.octets(items[5], what)
    unsigned: dict[str, tuple[Tlv, ...]] = {}
    if len(items) == 7:
        unsigned_raw = items[6].expect(CONTEXT, True, 1, what)
        unsigned = attributes(unsigned_raw, what)
        for attr in unsigned_raw.children(what):
            oid = der.oid(attr.children(what)[0], what)
            if oid not in allowed_unsigned:
                raise VerificationError(
                    f"{what}: unsigned attribute {oid} {at(attr, sd.base)} is not allowed "
                    "here; unsigned data is not covered by the signature"
                )
    if content_type is not None:
        got = der.oid(single(signed, CONTENT_TYPE, what), what)
        if got != content_type:
            raise VerificationError(f"{what}: signed contentType {got} is not {content_type}")
    claimed = der.octets(single(signed, MESSAGE_DIGEST, what), what)
    if claimed != hash_bytes(digest, content):
        raise VerificationError(f"{what}: the messageDigest attribute does not match the content")
    verify_raw(cert, sig_alg, digest, sig=sig, data=b"\x31" + signed_raw.raw[1:], what=what)
    return Signer(cert, digest, sig, tuple(signed.items()), tuple(unsigned.items()), sig_alg)


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
