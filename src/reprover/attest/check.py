"""Checking attestations offline: who signed, what they say, and whether k of n agree.

Owns: `check_attestation` (one file: DSSE envelope or sigstore bundle; signature by a trusted
key or identity, payload type, Statement and VSA shape, a `verifier.id` the reader accepts,
reprover's rebuild extension (unless the reader waives it) agreeing with the VSA, a subject for
each artifact's sha256 *under the artifact's name*, optional commit and policy (manifest)
digest pins, result PASSED) and `require_threshold` (k distinct trusted signers over all
accepted attestations; a key is its public key, SubjectPublicKeyInfo DER, never a keyid
string). Sigstore bundles are verified against a pinned trusted root: the
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

from reprover.attest.dsse import is_envelope, key_identity, verify_envelope
from reprover.attest.sigstore_verify import Identity, verify_dsse_bundle
from reprover.attest.statement import (
    PASSED,
    PAYLOAD_TYPE,
    REBUILD_PREDICATE,
    SHA256_HEX,
    VERIFIER_ID,
    parse_statement,
)
from reprover.errors import InputError, VerificationError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

SIGSTORE_BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"


@dataclass(frozen=True)
class Trust:
    """Whom to trust: public keys (DSSE) and sigstore identities under a pinned trusted root.

    Keys are deduplicated by their public key (SubjectPublicKeyInfo DER): the same key given
    twice, in any spelling, is one signer.
    """

    keys: tuple[Key, ...] = ()
    identities: tuple[Identity, ...] = ()
    trusted_root: TrustedRoot | None = None

    def __post_init__(self) -> None:
        unique: dict[bytes, Key] = {}
        for key in self.keys:
            unique.setdefault(key_identity(key), key)
        object.__setattr__(self, "keys", tuple(unique.values()))

    @property
    def size(self) -> int:
        """How many distinct signers could ever count (n in k of n)."""
        return len({key_identity(k) for k in self.keys}) + len(set(self.identities))


@dataclass(frozen=True)
class Expect:
    """What the reader requires of an attestation beyond its signature.

    `verifier_ids`: the VSA `verifier.id` values accepted (default: reprover's own).
    `require_rebuild`: reprover's rebuild extension must be present and agree with the VSA.
    `policy_digest`: the VSA `policy.digest.sha256` (the manifest's sha256) must equal it.
    `commit`: the rebuild extension's `source.commit` must equal it.
    """

    verifier_ids: tuple[str, ...] = (VERIFIER_ID,)
    require_rebuild: bool = True
    policy_digest: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class Match:
    """An artifact and the subject it matched: the name and the sha256 both agree."""

    artifact: str
    subject: str
    sha256: str


@dataclass(frozen=True)
class Accepted:
    """An attestation that passed every check, and the trusted signers behind it."""

    source: str
    signers: tuple[str, ...]
    statement: Mapping[str, Any] = field(repr=False)
    matches: tuple[Match, ...] = ()

    @property
    def commit(self) -> str | None:
        """The source commit the rebuild extension names, if present."""
        rebuild = self.statement["predicate"].get(REBUILD_PREDICATE)
        source = rebuild.get("source") if isinstance(rebuild, dict) else None
        commit = source.get("commit") if isinstance(source, dict) else None
        return commit if isinstance(commit, str) else None

    @property
    def manifest_sha256(self) -> str | None:
        """The VSA policy digest: the sha256 of the manifest the verifier ran."""
        digest = self.statement["predicate"]["policy"].get("digest")
        value = digest.get("sha256") if isinstance(digest, dict) else None
        return value if isinstance(value, str) else None

    @property
    def verifier(self) -> str:
        """The VSA `verifier.id`."""
        return str(self.statement["predicate"]["verifier"]["id"])


def check_attestation(
    data: bytes,
    *,
    source: str,
    trust: Trust,
    artifacts: Mapping[str, str],
    policy_digest: str | None = None,
    expect: Expect | None = None,
) -> Accepted:
    """Check one attestation file's bytes; return it with its trusted signers, or raise.

    Args:
        data: the file's bytes (a DSSE envelope or a sigstore bundle, JSON).
        source: how to name the file in messages.
        trust: the trusted keys and identities.
        artifacts: the subject name each file must have -> the sha256 of its bytes on disk;
            each needs a subject with that name and that digest.
        policy_digest: when given, the VSA `policy.digest.sha256` must equal it (it pins the
            manifest, hence the repository, commit, recipe and policy); overrides `expect`'s.
        expect: the accepted verifiers, the rebuild extension and the pins (default `Expect()`).

    Raises:
        InputError: the file is not JSON, or neither a DSSE envelope nor a sigstore bundle.
        VerificationError: any check said no; the message gives the reason (the caller names
            the file, once).
    """
    expect = expect or Expect()
    if policy_digest is not None:
        expect = Expect(expect.verifier_ids, expect.require_rebuild, policy_digest, expect.commit)
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{source}: not a JSON attestation: {exc}") from exc
    payload_type, payload, signers = _signed_payload(document, data, source, trust)
    statement, matches = _judge(payload_type, payload, artifacts, expect)
    return Accepted(source, signers, statement, matches)


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
    payload_type: str, payload: bytes, artifacts: Mapping[str, str], expect: Expect
) -> tuple[dict[str, Any], tuple[Match, ...]]:
    """Check what a verified payload says: types, verifier, subjects, pins, result."""
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"payloadType is {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    statement = parse_statement(payload)
    predicate = statement["predicate"]
    verifier = predicate["verifier"]["id"]
    if verifier not in expect.verifier_ids:
        raise VerificationError(
            f"made by verifier {verifier!r}, which you do not accept (accepted: "
            f"{', '.join(expect.verifier_ids)})",
            hint="accept another verifier with --verifier-id ID only if you trust what it checks",
        )
    _check_rebuild(predicate, expect.require_rebuild)
    matches = _check_subjects(statement, artifacts)
    _check_policy(statement, expect.policy_digest)
    _check_commit(statement, expect.commit)
    result = predicate["verificationResult"]
    if result != PASSED:
        raise VerificationError(
            f"the verifier attested verificationResult {result}: the release did not verify "
            "for them"
        )
    return statement, matches


def _check_rebuild(predicate: Mapping[str, Any], required: bool) -> None:
    """Reprover's rebuild extension: present (unless waived) and agreeing with the VSA."""
    rebuild = predicate.get(REBUILD_PREDICATE)
    if rebuild is None:
        if required:
            raise VerificationError(
                f"carries no rebuild extension ({REBUILD_PREDICATE}): nothing says the release "
                "was rebuilt from its source",
                hint="pass --allow-no-rebuild only to accept summaries of other checks",
            )
        return
    source = rebuild.get("source") if isinstance(rebuild, dict) else None
    if not isinstance(source, dict) or not isinstance(source.get("commit"), str):
        raise VerificationError("the rebuild extension names no source commit")
    verdict = "pass" if predicate["verificationResult"] == PASSED else "fail"
    if rebuild.get("verdict") != verdict:
        raise VerificationError(
            f"the rebuild extension's verdict {rebuild.get('verdict')!r} contradicts "
            f"verificationResult {predicate['verificationResult']}"
        )
    digest = predicate["policy"].get("digest")
    policy = digest.get("sha256") if isinstance(digest, dict) else None
    if rebuild.get("manifestSha256") != policy:
        raise VerificationError(
            f"the rebuild extension's manifestSha256 {rebuild.get('manifestSha256')} differs "
            f"from the policy digest {policy}"
        )


def _is_bundle(document: Any) -> bool:
    media = document.get("mediaType") if isinstance(document, dict) else None
    return isinstance(media, str) and media.startswith(SIGSTORE_BUNDLE_MEDIA_PREFIX)


def _check_subjects(
    statement: Mapping[str, Any], artifacts: Mapping[str, str]
) -> tuple[Match, ...]:
    """Each artifact must be a subject: the same sha256 under the same name."""
    subjects = [
        (str(s.get("name", "")), str(s["digest"].get("sha256", "")).lower())
        for s in statement["subject"]
    ]
    if not artifacts:
        raise InputError("no --artifact to check the attestation against")
    matches = []
    for name, sha256 in artifacts.items():
        digest = sha256.lower()
        if (name, digest) in subjects:
            matches.append(Match(name, name, digest))
            continue
        same_bytes = [n for n, d in subjects if d == digest]
        if same_bytes:
            raise VerificationError(
                f"artifact {name}: its bytes are those of subject {same_bytes[0]!r}, not of a "
                f"subject named {name!r}: another file under this name (substitution)",
                hint=f"if this file is {same_bytes[0]}, say so with --subject {same_bytes[0]}",
            )
        listed = ", ".join(f"{n} ({d[:12]})" for n, d in subjects)
        raise VerificationError(
            f"no subject matches artifact {name} (sha256 {sha256[:12]}...): the attestation "
            f"is about another file: {listed}"
        )
    return tuple(matches)


def _check_commit(statement: Mapping[str, Any], commit: str | None) -> None:
    if commit is None:
        return
    rebuild = statement["predicate"].get(REBUILD_PREDICATE)
    source = rebuild.get("source") if isinstance(rebuild, dict) else None
    actual = source.get("commit") if isinstance(source, dict) else None
    if actual != commit.lower():
        raise VerificationError(
            f"attests commit {actual}, expected {commit.lower()}: an attestation of another "
            "release (rollback or replay)"
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
