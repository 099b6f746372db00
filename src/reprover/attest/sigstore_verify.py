"""Verifying sigstore bundles offline, against a pinned trusted root, in plain words.

Owns: loading and validating a trusted root (`load_trusted_root`: the one shipped inside the
installed sigstore package, or a file the user names; never sigstore's writable user cache),
and `verify_dsse_bundle`: sigstore's own verifier (certificate chain at the logged time, SCT,
identity policy, Rekor inclusion proof, checkpoint and signed entry timestamp, DSSE signature,
log-body consistency) run for each trusted identity, with its refusals told in plain words
(another sigstore instance, certificate expired when logged, identity mismatch, log proof
altered).
Does not own: what the verified payload says (see `reprover.attest.check`), or logging
(the CLI decides how loud sigstore's logger is).

Checks made here before sigstore's (the log instance, the certificate's validity at the logged
time) only ever add a refusal with a clearer reason: acceptance always comes from sigstore's
full verification.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from reprover.errors import InputError, VerificationError

if TYPE_CHECKING:
    from sigstore.models import Bundle, TrustedRoot

# The trusted root sigstore ships for its public-good instance, inside the installed package
# (read-only data of that release), as opposed to the TUF cache under the user's home.
SHIPPED_TRUSTED_ROOT = ("_store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")
_DETAIL_LIMIT = 160

# sigstore's refusal (a fragment of its message) -> what it means, in plain words. First match
# wins; the order puts the specific before the general.
_PLAIN_REASONS: tuple[tuple[str, str], ...] = (
    ("SANs do not match", "identity mismatch: the certificate names another signer"),
    ("OIDCIssuer does not match", "identity mismatch: the certificate's OIDC issuer differs"),
    ("DSSE: invalid signature", "the DSSE signature does not verify with the certificate's key"),
    (
        "expired at time of signing",
        "the signing certificate was not valid when the entry was logged",
    ),
    (
        "SET: invalid inclusion promise",
        "the log's signed entry timestamp (SET) does not verify: "
        "the log entry's body, index or time was altered, or another log signed it",
    ),
    (
        "inclusion proof",
        "the log inclusion proof does not lead to its root hash: the entry or "
        "the proof was altered",
    ),
    (
        "checkpoint",
        "the log checkpoint does not verify: its signature, origin or root hash was altered",
    ),
    (
        "not enough sources of verified time",
        "no verified time: the log entry is from a log the "
        "trusted root does not list (a bundle from another sigstore instance?)",
    ),
    ("SCT", "the certificate's SCT does not verify against the trusted CT logs"),
    (
        "certificate chain",
        "the signing certificate chain does not verify against the trusted "
        "root's certificate authorities (certificate chain)",
    ),
    ("does not match the", "the log entry does not match the bundle's signature or payload"),
    ("log entry", "the log entry does not verify or does not match the bundle"),
)


@dataclass(frozen=True)
class Identity:
    """A sigstore signer to trust: the certificate's SAN identity and its OIDC issuer."""

    identity: str
    issuer: str


def load_trusted_root(path: Path | None = None) -> TrustedRoot:
    """Load and validate a sigstore trusted root: `path`, or the one shipped with sigstore.

    A root is usable only if it lists certificate authorities with certificates, transparency
    logs and CT logs, each with keys sigstore can load.

    Raises:
        InputError: the file is unreadable, not a trusted root, or unusable (the message says
            which part is missing).
    """
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - slow import
    from sigstore.models import TrustedRoot  # noqa: PLC0415
    from sigstore_models.trustroot import v1 as trustroot_v1  # noqa: PLC0415

    try:
        if path is None:
            shipped = resources.files("sigstore")
            for part in SHIPPED_TRUSTED_ROOT:
                shipped = shipped.joinpath(part)
            data = shipped.read_bytes()
            where = f"sigstore's shipped {'/'.join(SHIPPED_TRUSTED_ROOT)}"
        else:
            data = path.read_bytes()
            where = str(path)
    except OSError as exc:
        raise InputError(f"cannot read the sigstore trusted root: {exc.strerror or exc}") from exc
    try:
        root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
    except (ValueError, SigstoreError) as exc:
        raise InputError(
            f"{where} is not a sigstore trusted root: {_detail(exc)}",
            hint="pass the trusted_root.json of the sigstore instance that made the bundles",
        ) from exc
    _require_usable(root, where)
    return root


def _require_usable(root: TrustedRoot, where: str) -> None:
    """Refuse a root that loads but cannot verify anything, naming what is missing."""
    from sigstore._internal.trust import KeyringPurpose  # noqa: PLC0415 - slow import
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415

    checks = (
        ("no certificate authority certificates (Fulcio)", root.get_fulcio_certs),
        ("no transparency log keys (Rekor)", lambda: root.rekor_keyring(KeyringPurpose.VERIFY)),
        ("no CT log keys", lambda: root.ct_keyring(KeyringPurpose.VERIFY)),
    )
    for missing, probe in checks:
        try:
            probe()
        except (SigstoreError, ValueError, TypeError) as exc:
            raise InputError(
                f"{where} is not a usable sigstore trusted root: it has {missing} ({_detail(exc)})",
                hint="pass the complete trusted_root.json of the sigstore instance",
            ) from exc


def verify_dsse_bundle(
    data: bytes, identities: Sequence[Identity], root: TrustedRoot
) -> tuple[str, bytes, str]:
    """Verify a sigstore DSSE bundle for any one trusted identity; return what it signed.

    Returns:
        (payload type, payload bytes, signer), the signer as `sigstore:ISSUER|IDENTITY`.

    Raises:
        VerificationError: the bundle is malformed, from another instance, or any of
            sigstore's checks said no (the reason in plain words, sigstore's own in brackets).
    """
    from cryptography.x509 import ExtensionNotFound  # noqa: PLC0415 - slow import
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.models import Bundle  # noqa: PLC0415
    from sigstore.verify import Verifier  # noqa: PLC0415
    from sigstore.verify.policy import Identity as IdentityPolicy  # noqa: PLC0415

    if not identities:
        raise VerificationError("a sigstore bundle, but no --identity/--issuer is trusted")
    try:
        bundle = Bundle.from_json(data)
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"malformed sigstore bundle: {_detail(exc)}") from exc
    _require_same_instance(bundle, root)
    if bundle._dsse_envelope is None:
        raise VerificationError(
            "a sigstore message signature, not a DSSE attestation: reprover attestations are "
            "in-toto Statements in DSSE envelopes"
        )
    _require_valid_when_logged(bundle)
    verifier = Verifier(trusted_root=root)
    reasons: list[str] = []
    for trusted in identities:
        policy = IdentityPolicy(identity=trusted.identity, issuer=trusted.issuer)
        try:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
        except (SigstoreError, ValueError, ExtensionNotFound) as exc:
            reasons.append(plain_reason(exc))
            continue
        return payload_type, payload, f"sigstore:{trusted.issuer}|{trusted.identity}"
    unique = list(dict.fromkeys(reasons))
    if len(unique) == 1:
        raise VerificationError(f"sigstore bundle rejected: {unique[0]}")
    raise VerificationError("sigstore bundle matches no trusted identity: " + "; ".join(unique))


def _require_same_instance(bundle: Bundle, root: TrustedRoot) -> None:
    """Refuse, by name, a bundle whose log entry comes from a log the root does not list."""
    trusted_logs = {tlog.log_id.key_id for tlog in root._inner.tlogs}
    entry = bundle.log_entry._inner
    if entry.log_id.key_id not in trusted_logs:
        log = base64.b64encode(entry.log_id.key_id).decode()
        raise VerificationError(
            f"a bundle from another sigstore instance: its log entry was made by log {log}, "
            "which the trusted root does not list (if you trust that instance, pass its "
            "trusted_root.json with --trusted-root)"
        )


def _require_valid_when_logged(bundle: Bundle) -> None:
    """Refuse, by name, a certificate that was not valid when the log integrated the entry."""
    integrated = bundle.log_entry._inner.integrated_time
    if not integrated:
        return  # Rekor v2 entries carry no integrated time; sigstore needs a timestamp then
    when = dt.datetime.fromtimestamp(integrated, dt.timezone.utc)
    cert = bundle.signing_certificate
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise VerificationError(
            "the signing certificate was not valid when the entry was logged: logged at "
            f"{_utc(when)}, certificate valid {_utc(cert.not_valid_before_utc)} to "
            f"{_utc(cert.not_valid_after_utc)}"
        )


def _utc(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def plain_reason(exc: BaseException) -> str:
    """Say what a sigstore refusal means, with sigstore's own words (bounded) in brackets."""
    text = str(exc) or type(exc).__name__
    detail = _detail(exc)
    for fragment, meaning in _PLAIN_REASONS:
        if fragment.lower() in text.lower():
            return f"{meaning} [sigstore: {detail}]"
    return detail


def _detail(exc: BaseException) -> str:
    """One bounded line of an exception's message, without Python reprs of bytes or models."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"b(['\"])(?:\\.|(?!\1).)*\1", "<bytes>", text)  # bytes reprs
    text = " ".join(text.split())
    if len(text) > _DETAIL_LIMIT:
        text = text[: _DETAIL_LIMIT - 3] + "..."
    return text
