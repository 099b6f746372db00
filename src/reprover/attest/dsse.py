"""Key-based DSSE envelopes, fully offline, with securesystemslib keys.

Owns: wrapping the exact Statement bytes in a DSSE v1 envelope signed by one or more
securesystemslib signers (`sign_envelope`), and reading an envelope back and verifying its
signatures against trusted public keys (`verify_envelope`), counting each trusted key once.
Does not own: loading keys from files (see `reprover.keys`), what the payload says (see
`reprover.attest.statement` and `reprover.attest.check`).

The envelope is the standard JSON form (`payload` and `sig` in base64, `payloadType`,
`signatures[].keyid`) that securesystemslib's `dsse.Envelope.from_dict` and other DSSE tools
read. A signature's `keyid` is an unauthenticated hint: when it names no trusted key, every
trusted key is tried. A key is its public key (`key_identity`, the SubjectPublicKeyInfo DER):
two signatures by one key count once, whatever keyids they claim.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import Key, Signature, Signer, SSlibKey

from reprover.attest.statement import PAYLOAD_TYPE
from reprover.errors import InputError, VerificationError


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope whose signatures were checked: its payload and the keys that signed it."""

    payload_type: str
    payload: bytes
    keyids: tuple[str, ...]


def key_identity(key: Key) -> bytes:
    """A key's identity: its SubjectPublicKeyInfo DER (the keyid string when it has none).

    Keys of kinds without a `cryptography` public key fall back to `keytype:keyid`.
    """
    if isinstance(key, SSlibKey):
        try:
            return key._crypto_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, TypeError, KeyError, UnsupportedAlgorithm):
            pass
    return f"{key.keytype}:{key.keyid}".encode()


def sign_envelope(payload: bytes, signers: Sequence[Signer]) -> bytes:
    """Sign `payload` (the exact Statement bytes) and return the envelope's JSON bytes.

    Raises:
        InputError: no signer was given.
    """
    if not signers:
        raise InputError("at least one signing key is needed for a DSSE envelope")
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    for signer in signers:
        envelope.sign(signer)
    return (json.dumps(envelope.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def is_envelope(document: Any) -> bool:
    """Whether a parsed JSON document has the shape of a DSSE envelope."""
    return isinstance(document, dict) and "payloadType" in document and "payload" in document


def verify_envelope(document: dict[str, Any], keys: Sequence[Key]) -> VerifiedEnvelope:
    """Verify a parsed DSSE envelope against trusted keys.

    Every signature is checked; the result lists each trusted key that verified one, once (one
    public key counts once, whatever keyids its signatures claim).
    Signatures by keys that are not trusted are ignored (they never count).

    Raises:
        InputError: the envelope is malformed (missing fields, bad base64).
        VerificationError: no signature verifies with a trusted key; the message says whether
            a trusted key's signature was present but invalid (the payload or signature was
            altered) or no trusted key signed at all.
    """
    payload_type = document.get("payloadType")
    signatures = document.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(document.get("payload"), str):
        raise InputError("DSSE envelope needs string payloadType and payload")
    if not isinstance(signatures, list) or not signatures:
        raise VerificationError("DSSE envelope carries no signature")
    payload = _b64("payload", document["payload"])
    pae = Envelope(payload, payload_type, {}).pae()
    trusted = {key.keyid: key for key in keys}
    verified: list[str] = []
    identities: set[bytes] = set()
    broken: list[str] = []
    unknown: list[str] = []
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise InputError("DSSE signature entries need a base64 'sig'")
        hint = entry.get("keyid") if isinstance(entry.get("keyid"), str) else ""
        sig = _b64("signature", entry["sig"]).hex()
        candidates = [trusted[hint]] if hint in trusted else list(trusted.values())
        signer = _first_verifying(candidates, sig, pae)
        if signer is not None:
            identity = key_identity(trusted[signer])
            if identity not in identities:
                identities.add(identity)
                verified.append(signer)
        elif hint in trusted:
            broken.append(hint)
        else:
            unknown.append(hint or "(no keyid)")
    if verified:
        return VerifiedEnvelope(payload_type, payload, tuple(verified))
    if broken:
        raise VerificationError(
            f"the signature by trusted key {broken[0][:16]} does not verify: the payload or "
            "the signature was altered after signing"
        )
    raise VerificationError(
        f"signed by no trusted key: signature keyid(s) {', '.join(k[:16] for k in unknown)}; "
        f"trusted: {', '.join(k[:16] for k in trusted) or 'none'}",
        hint="pass the signer's public key with --key if you trust it",
    )


def _first_verifying(candidates: Sequence[Key], sig_hex: str, pae: bytes) -> str | None:
    for key in candidates:
        try:
            key.verify_signature(Signature(keyid=key.keyid, sig=sig_hex), pae)
        except (UnverifiedSignatureError, SslibVerificationError):
            continue
        return str(key.keyid)
    return None


def _b64(what: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            padded = text + "=" * (-len(text) % 4)
            return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise InputError(f"DSSE {what} is not base64: {exc}") from exc
