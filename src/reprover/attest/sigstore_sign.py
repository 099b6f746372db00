"""Keyless signing with sigstore: an OIDC identity, a Fulcio certificate, a Rekor entry.

Owns: turning the exact Statement bytes into a sigstore bundle (DSSE, in-toto payload type)
with `sigstore.sign.Signer.sign_dsse`, against the public-good instance or the instance a
client trust config file names.
Does not own: finding the OIDC token (the CLI detects an ambient one, for example GitHub
Actions with `id-token: write`), or verifying bundles (see `reprover.attest.check`).

Signing needs the network (Fulcio and Rekor); verifying does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reprover.errors import InconclusiveError, InputError

if TYPE_CHECKING:
    from sigstore.sign import SigningContext


def signing_context(trust_config: Path | None = None) -> SigningContext:
    """A sigstore signing context: public good, or the instance a trust config file names.

    Args:
        trust_config: a sigstore ClientTrustConfig JSON file (trusted root + signing config)
            for a private sigstore instance; None for the public-good instance (fetched and
            checked through sigstore's TUF repository, which needs the network).

    Raises:
        InputError: the trust config file is unreadable or malformed.
        InconclusiveError: the public-good trust configuration cannot be fetched.
    """
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - sigstore is slow to import
    from sigstore.models import ClientTrustConfig  # noqa: PLC0415
    from sigstore.sign import SigningContext  # noqa: PLC0415

    if trust_config is not None:
        try:
            config = ClientTrustConfig.from_json(trust_config.read_text(encoding="utf-8"))
            return SigningContext.from_trust_config(config)
        except OSError as exc:
            raise InputError(f"cannot read sigstore trust config {trust_config}: {exc}") from exc
        except (ValueError, SigstoreError) as exc:
            raise InputError(
                f"{trust_config} is not a sigstore client trust config: {exc}"
            ) from exc
    try:
        return SigningContext.from_trust_config(ClientTrustConfig.production())
    except (SigstoreError, OSError) as exc:
        raise InconclusiveError(
            f"cannot load sigstore's public-good signing configuration: {exc}",
            hint="signing with sigstore needs network access to its TUF repository",
        ) from exc


def sign_bundle(payload: bytes, token: str, context: SigningContext) -> bytes:
    """Sign the Statement bytes keylessly and return the sigstore bundle's JSON bytes.

    The bundle's DSSE payload is exactly `payload`: sigstore keeps the bytes it is given.

    Args:
        payload: the canonical Statement bytes (see `reprover.attest.statement`).
        token: a raw OIDC identity token (audience `sigstore`).
        context: where to get the certificate and log entry (see `signing_context`).

    Raises:
        InputError: the token or the payload is not acceptable to sigstore.
        InconclusiveError: Fulcio or Rekor could not be reached or refused the request.
    """
    import requests  # noqa: PLC0415 - sigstore is slow to import; only signing needs it
    from sigstore._internal.fulcio.client import ExpiredCertificate, FulcioClientError  # noqa: PLC0415
    from sigstore._internal.rekor import RekorClientError  # noqa: PLC0415
    from sigstore.dsse import Statement  # noqa: PLC0415
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.oidc import ExpiredIdentity, IdentityError, IdentityToken  # noqa: PLC0415

    service_errors = (
        requests.RequestException,
        FulcioClientError,
        RekorClientError,
        ExpiredCertificate,
        ExpiredIdentity,
        SigstoreError,
    )

    try:
        identity = IdentityToken(token)
    except IdentityError as exc:
        raise InputError(f"the OIDC identity token is not usable: {exc}") from exc
    try:
        statement = Statement(payload)
    except SigstoreError as exc:
        raise InputError(f"sigstore refuses the statement: {exc}") from exc
    try:
        with context.signer(identity, cache=True) as signer:
            bundle = signer.sign_dsse(statement)
    except service_errors as exc:
        raise InconclusiveError(
            f"sigstore signing failed: {type(exc).__name__}: {exc}",
            hint="check network access to Fulcio and Rekor, and that the token is fresh",
        ) from exc
    return (bundle.to_json() + "\n").encode()
