"""Checking attestations offline: who signed, what they say, and whether k of n agree.

Owns: `check_attestation` (one file: DSSE envelope or sigstore bundle; signature by a trusted
key or identity, payload type, Statement and VSA shape, a subject for each artifact's sha256,
optional policy digest, result PASSED) and `require_threshold` (k distinct trusted signers over
all accepted attestations). Sigstore bundles are verified against a pinned trusted root: the
one shipped inside the installed sigstore package, or a file the user names; never sigstore's
writable user cache.
Does not own: hashing the artifacts (the caller passes their sha256), loading keys from files
(see `reprover.keys`), printing.

Every check raises `VerificationError` with the reason, or returns; none returns False.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import Key

from reprover.attest.dsse import is_envelope, verify_envelope
from reprover.attest.sigstore_verify import Identity, verify_dsse_bundle
from reprover.attest.statement import (
    PASSED,
    PAYLOAD_TYPE,
    REBUILD_PREDICATE,
    SHA256_HEX,
    parse_statement,
)
from reprover.errors import InputError, VerificationError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

SIGSTORE_BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"


@dataclass(frozen=True)
class Trust:
    """Whom to trust: public keys (DSSE) and sigstore identities under a pinned trusted root."""

    keys: tuple[Key, ...] = ()
    identities: tuple[Identity, ...] = ()
    trusted_root: TrustedRoot | None = None

    @property
    def size(self) -> int:
        """How many distinct signers could ever count (n in k of n)."""
        return len({k.keyid for k in self.keys}) + len(set(self.identities))


@dataclass(frozen=True)
class Accepted:
    """An attestation that passed every check, and the trusted signers behind it."""

    source: str
    signers: tuple[str, ...]
    statement: Mapping[str, Any] = field(repr=False)

    @property
    def commit(self) -> str | None:
        """The source commit the rebuild extension names, if present."""
        rebuild = self.statement["predicate"].get(REBUILD_PREDICATE)
        source = rebuild.get("source") if isinstance(rebuild, dict) else None
        commit = source.get("commit") if isinstance(source, dict) else None
        return commit if isinstance(commit, str) else None


def check_attestation(
    data: bytes,
    *,
    source: str,
    trust: Trust,
    artifacts: Mapping[str, str],
    policy_digest: str | None = None,
) -> Accepted:
    """Check one attestation file's bytes; return it with its trusted signers, or raise.

    Args:
        data: the file's bytes (a DSSE envelope or a sigstore bundle, JSON).
        source: how to name the file in messages.
        trust: the trusted keys and identities.
        artifacts: artifact name -> sha256 of the bytes on disk; each needs a subject.
        policy_digest: when given, the VSA `policy.digest.sha256` must equal it (it pins the
            manifest, hence the repository, commit, recipe and policy).

    Raises:
        InputError: the file is not JSON, or neither a DSSE envelope nor a sigstore bundle.
        VerificationError: any check said no; the message gives the reason (the caller names
            the file, once).
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{source}: not a JSON attestation: {exc}") from exc
    payload_type, payload, signers = _signed_payload(document, data, source, trust)
    statement = _judge(payload_type, payload, artifacts, policy_digest)
    return Accepted(source, signers, statement)


def require_threshold(
    accepted: Sequence[Accepted], threshold: int, trust: Trust
) -> tuple[str, ...]:
    """Require `threshold` distinct trusted signers across the accepted attestations.

    A signer who signed several attestations counts once.

    Returns:
        The distinct signers, in first-seen order.

    Raises:
        InputError: the threshold is below 1 or above the number of trusted signers.
        VerificationError: fewer distinct trusted signers than the threshold.
    """
    if threshold < 1:
        raise InputError(f"--threshold must be at least 1, got {threshold}")
    if threshold > trust.size:
        raise InputError(
            f"--threshold {threshold} can never be met: only {trust.size} trusted signer(s) given"
        )
    seen: dict[str, list[str]] = {}
    for attestation in accepted:
        for signer in attestation.signers:
            seen.setdefault(signer, []).append(attestation.source)
    if len(seen) < threshold:
        repeats = [f"{s} signed {len(f)} attestations" for s, f in seen.items() if len(f) > 1]
        detail = f" ({'; '.join(repeats)}; each signer counts once)" if repeats else ""
        raise VerificationError(
            f"only {len(seen)} distinct trusted signer(s) agree, {threshold} required{detail}"
        )
    return tuple(seen)


def _signed_payload(
    document: Any, data: bytes, source: str, trust: Trust
) -> tuple[str, bytes, tuple[str, ...]]:
    """Verify the signatures; return payload type, payload and the trusted signers."""
    if is_envelope(document):
        if not trust.keys:
            raise VerificationError("a key-signed DSSE envelope, but no --key is trusted")
        envelope = verify_envelope(document, trust.keys)
        signers = tuple(f"key:{keyid}" for keyid in envelope.keyids)
        return envelope.payload_type, envelope.payload, signers
    if _is_bundle(document):
        if trust.trusted_root is None:
            raise VerificationError("a sigstore bundle, but no trusted root is pinned")
        payload_type, payload, signer = verify_dsse_bundle(
            data, trust.identities, trust.trusted_root
        )
        return payload_type, payload, (signer,)
    raise InputError(f"{source}: neither a DSSE envelope nor a sigstore bundle")


def _judge(
    payload_type: str, payload: bytes, artifacts: Mapping[str, str], policy_digest: str | None
) -> dict[str, Any]:
    """Check what a verified payload says: types, subjects, policy digest, result."""
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"payloadType is {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    statement = parse_statement(payload)
    _check_subjects(statement, artifacts)
    _check_policy(statement, policy_digest)
    result = statement["predicate"]["verificationResult"]
    if result != PASSED:
        raise VerificationError(
            f"the verifier attested verificationResult {result}: the release did not verify "
            "for them"
        )
    return statement


def _is_bundle(document: Any) -> bool:
    media = document.get("mediaType") if isinstance(document, dict) else None
    return isinstance(media, str) and media.startswith(SIGSTORE_BUNDLE_MEDIA_PREFIX)


def _check_subjects(statement: Mapping[str, Any], artifacts: Mapping[str, str]) -> None:
    subjects = statement["subject"]
    attested = {str(s["digest"].get("sha256", "")).lower(): s.get("name", "_") for s in subjects}
    if not artifacts:
        raise InputError("no --artifact to check the attestation against")
    for name, sha256 in artifacts.items():
        if sha256.lower() not in attested:
            listed = ", ".join(f"{n} ({d[:12]})" for d, n in attested.items())
            raise VerificationError(
                f"no subject matches artifact {name} (sha256 {sha256[:12]}...): the attestation "
                f"is about another file: {listed}"
            )


def _check_policy(statement: Mapping[str, Any], policy_digest: str | None) -> None:
    if policy_digest is None:
        return
    expected = policy_digest.lower().removeprefix("sha256:")
    if not SHA256_HEX.fullmatch(expected):
        raise InputError(f"--policy-digest {policy_digest!r} is not a sha256 hex digest")
    predicate = statement["predicate"]
    digest = predicate["policy"].get("digest", {})
    actual = digest.get("sha256") if isinstance(digest, dict) else None
    if actual != expected:
        rebuild = predicate.get(REBUILD_PREDICATE)
        source = rebuild.get("source") if isinstance(rebuild, dict) else None
        commit = source.get("commit") if isinstance(source, dict) else None
        about = f" (it attests commit {commit})" if isinstance(commit, str) else ""
        raise VerificationError(
            f"policy digest is {actual}, expected {expected}: the attestation was made for "
            f"another manifest{about}"
        )
