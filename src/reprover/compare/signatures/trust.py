"""Chain a code-signing certificate to pinned trust anchors.

Owns: loading pinned certificates (PEM or DER files; OpenPGP keys pinned beside them are told
apart by content, `is_openpgp`, and left to `openpgp`), building a chain from a signer certificate
through the certificates a signature carries to one pinned certificate, and the checks on every
link: the issuer's signature, validity at a given time, CA basic constraints for issuers and the
required extended key usage (code signing for signers, time stamping for TSAs).
Does not own: the PKCS#7 structure (`reprover.compare.signatures.pkcs7`). No revocation checks (no
network): a revoked certificate that chains to a pinned anchor is accepted; pin narrowly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from reprover.errors import InputError, VerificationError

MAX_CHAIN = 8
CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
KEY_BLOCKS = (b"-----BEGIN PGP PUBLIC KEY BLOCK-----", b"-----BEGIN PGP PRIVATE KEY BLOCK-----")


def load_trusted(sources: Sequence[Path | bytes]) -> tuple[x509.Certificate, ...]:
    """Every certificate in the pinned sources (PEM, possibly several per file, or DER).

    A source is a file, or bytes already read (the pipeline reads trust before the build and
    passes the bytes, so a build cannot change them).

    OpenPGP keys among the sources are skipped (RPM signatures use them).

    Raises:
        InputError: a file cannot be read, or a source is neither a certificate nor an OpenPGP
            key.
        VerificationError: every source is an OpenPGP key: nothing to chain an X.509 signer to.
    """
    out: list[x509.Certificate] = []
    openpgp = 0
    for index, source in enumerate(sources):
        if isinstance(source, bytes):
            data, path = source, f"trusted certificate #{index}"
        else:
            path = str(source)
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise InputError(
                    f"cannot read trusted certificate {source}: {exc.strerror}"
                ) from exc
        if is_openpgp(data):
            openpgp += 1
            continue
        try:
            if b"-----BEGIN" in data:
                out.extend(x509.load_pem_x509_certificates(data))
            else:
                out.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise InputError(
                f"{path}: not a PEM or DER certificate",
                hint="pin an X.509 certificate (PEM or DER), such as your code-signing CA's, "
                "or an OpenPGP public key (armored or binary) for RPM signatures",
            ) from exc
    if openpgp and not out:
        raise VerificationError(
            "only OpenPGP keys are pinned; this signature is X.509 and must chain to a pinned "
            "certificate",
            hint="pin the code-signing CA's certificate beside the OpenPGP keys (--trusted)",
        )
    return tuple(out)


def is_openpgp(data: bytes) -> bool:
    """Whether pinned bytes are an OpenPGP key: an armored key block, or binary opening with a
    key packet.

    X.509 (PEM, or DER opening with a SEQUENCE, 0x30) never matches: an OpenPGP packet's first
    byte has its high bit set.
    """
    if data.lstrip().startswith(KEY_BLOCKS):
        return True
    if not data or not data[0] & 0x80:
        return False
    tag = data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F
    return tag in (5, 6)  # secret key, public key


def describe(cert: x509.Certificate) -> str:
    """One line naming a certificate: subject and serial."""
    return f"{cert.subject.rfc4514_string()} (serial {cert.serial_number:x})"


def _ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return set(ext.value)


def _check_usage(
    cert: x509.Certificate, usage: x509.ObjectIdentifier, leaf: bool, what: str
) -> None:
    ekus = _ekus(cert)
    if leaf and (ekus is None or usage not in ekus):
        raise VerificationError(
            f"{what}: signer certificate {describe(cert)} lacks the {usage.dotted_string} "
            "extended key usage"
        )
    if not leaf and ekus is not None and usage not in ekus and ANY_EKU not in ekus:
        raise VerificationError(
            f"{what}: issuing certificate {describe(cert)} restricts its extended key usage and "
            f"does not allow {usage.dotted_string}"
        )
    if leaf:
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return
        if not ku.digital_signature:
            raise VerificationError(f"{what}: {describe(cert)} may not sign (key usage)")


def _check_ca(cert: x509.Certificate, what: str) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise VerificationError(f"{what}: issuer {describe(cert)} is not a CA")


def _check_time(cert: x509.Certificate, at: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise VerificationError(
            f"{what}: certificate {describe(cert)} is not valid at {at.isoformat()} "
            f"(valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()})"
        )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def chain_to_trust(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    *,
    usage: x509.ObjectIdentifier,
    at: datetime,
    what: str,
) -> tuple[str, ...]:
    """Build and check a chain from `leaf` to one of `trusted`; return it, leaf first.

    A pinned certificate is an anchor: the chain stops at the first certificate that equals a
    pinned one or is directly issued by one. `pool` holds the intermediates the signature
    carried; they are never trusted by themselves.

    Raises:
        VerificationError: no chain to a pinned certificate, or a link fails a check.
    """
    _check_usage(leaf, usage, True, what)
    chain = [leaf]
    current = leaf
    while len(chain) <= MAX_CHAIN:
        _check_time(current, at, what)
        if current in trusted:
            return tuple(describe(c) for c in chain)
        anchor = next((t for t in trusted if _issued_by(current, t)), None)
        if anchor is not None:
            _check_ca(anchor, what)
            _check_usage(anchor, usage, False, what)
            _check_time(anchor, at, what)
            return tuple(describe(c) for c in [*chain, anchor])
        issuer = next((c for c in pool if c not in chain and _issued_by(current, c)), None)
        if issuer is None:
            raise VerificationError(
                f"{what}: signer {describe(leaf)} does not chain to a pinned certificate "
                f"(stopped at {describe(current)}, issued by {current.issuer.rfc4514_string()})",
                hint="pin the CA that issued the release signing certificate, or check who "
                "signed this file",
            )
        _check_ca(issuer, what)
        _check_usage(issuer, usage, False, what)
        chain.append(issuer)
        current = issuer
    raise VerificationError(f"{what}: certificate chain longer than {MAX_CHAIN}")


def require_on_chains(
    pool: Sequence[x509.Certificate], signers: Sequence[x509.Certificate], what: str
) -> None:
    """Require every certificate a signature carries to be a signer or one of its issuers.

    Certificates are not covered by the signature; one that no signer's chain uses is
    unverified data riding along with the signature, so it is refused.

    Raises:
        VerificationError: a certificate in `pool` is on no signer's issuer chain.
    """
    reached = [c for c in pool if c in signers]
    frontier = list(signers)
    while frontier:
        current = frontier.pop()
        for cert in pool:
            if cert not in reached and _issued_by(current, cert):
                reached.append(cert)
                frontier.append(cert)
    stray = [c for c in pool if c not in reached]
    forged = [c for c in reached if c.subject == c.issuer and not _issued_by(c, c)]
    if forged:
        raise VerificationError(
            f"{what}: self-signed certificate {describe(forged[0])} in the signature does not "
            "verify its own signature"
        )
    if stray:
        raise VerificationError(
            f"{what}: certificate {describe(stray[0])} is carried in the signature but issued "
            "no signer's certificate; unsigned, unused data is refused"
        )
