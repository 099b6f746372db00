"""Reading and writing in-toto metadata files safely, in both envelope formats.

Owns: turning the bytes of a layout or link file into an in-toto `Metadata` object (DSSE
envelope or legacy Metablock) with every parse failure wrapped; serializing signed metadata to
bytes; loading public keys from PEM files as the key dictionaries in-toto's layouts hold;
checking one signature on one metadata object with a precise answer.
Does not own: what the metadata means (see `reprover.intoto.verify` and `reprover.intoto.lint`).
"""

from __future__ import annotations

import hashlib
import json
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import securesystemslib.exceptions as sslib_exceptions
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from in_toto.exceptions import InvalidMetadata, SignatureVerificationError
from in_toto.models.layout import Layout
from in_toto.models.link import Link
from in_toto.models.metadata import ENVELOPE_PAYLOAD_TYPE, Envelope, Metablock, Metadata
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signer, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

from reprover.errors import InputError

MAX_METADATA_BYTES = 64 << 20
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LEGACY_HASH_ALGORITHMS = ["sha256", "sha512"]


class MetadataFormatError(Exception):
    """A metadata file cannot be parsed; the message says why in one line."""


@dataclass(frozen=True)
class Loaded:
    """A parsed metadata file: the container, its payload and which format it used."""

    path: Path
    metadata: Metadata
    payload: Layout | Link
    dsse: bool
    raw_payload: dict[str, Any]

    @property
    def signature_keyids(self) -> tuple[str, ...]:
        """The keyids the file's signatures claim (unverified)."""
        if isinstance(self.metadata, Envelope):
            return tuple(self.metadata.signatures)
        return tuple(str(s.get("keyid", "")) for s in self.metadata.signatures)


def parse(data: bytes, path: Path) -> Loaded:
    """Parse the bytes of a layout or link file.

    Raises:
        MetadataFormatError: not UTF-8 JSON, not an in-toto envelope or Metablock, or its
            payload is not a valid link or layout.
    """
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataFormatError(f"larger than {MAX_METADATA_BYTES >> 20} MiB")
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MetadataFormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise MetadataFormatError(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise MetadataFormatError("not a JSON object")
    dsse = "payload" in document
    if dsse and document.get("payloadType") != ENVELOPE_PAYLOAD_TYPE:
        raise MetadataFormatError(
            f"DSSE payloadType is {document.get('payloadType')!r}, not {ENVELOPE_PAYLOAD_TYPE!r}"
        )
    try:
        metadata = Metadata.from_dict(deepcopy(document))
        payload = metadata.get_payload()
    except InvalidMetadata as exc:
        raise MetadataFormatError("neither a DSSE envelope nor a Metablock") from exc
    except (
        sslib_exceptions.FormatError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        UnicodeDecodeError,
    ) as exc:
        raise MetadataFormatError(
            f"malformed in-toto metadata: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(payload, (Layout, Link)):
        raise MetadataFormatError("payload is neither a link nor a layout")
    raw = json.loads(metadata.payload) if isinstance(metadata, Envelope) else document["signed"]
    return Loaded(path, metadata, payload, dsse, raw)


def load(path: Path, what: str) -> Loaded:
    """Read and parse a metadata file; `what` names it in messages ("layout", "link").

    Raises:
        InputError: the file cannot be read or is malformed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        return parse(data, path)
    except MetadataFormatError as exc:
        raise InputError(f"{what} {path} is malformed: {exc}") from exc


def serialize(metadata: Metadata) -> bytes:
    """The bytes of a metadata file exactly as in-toto's own `dump` writes them."""
    if isinstance(metadata, Envelope):
        return json.dumps(metadata.to_dict(), sort_keys=True).encode("utf-8")
    return f"{metadata}".encode()


def sign(payload: Layout | Link, signer: Signer, *, legacy: bool) -> Metadata:
    """Wrap `payload` in a DSSE envelope (or a Metablock when `legacy`) signed by `signer`."""
    metadata: Metadata = Metablock(signed=payload) if legacy else Envelope.from_signable(payload)
    metadata.create_signature(signer)
    return metadata


def key_dict(key: Key) -> dict[str, Any]:
    """The dictionary form of a public key as an in-toto layout's `keys` holds it."""
    return {**key.to_dict(), "keyid": key.keyid}


def load_public_key(path: Path) -> dict[str, Any]:
    """Load a public PEM key (ed25519, ecdsa, rsa) as an in-toto key dictionary.

    Raises:
        InputError: the file is unreadable, not a public key, or of an unsupported type.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read public key {path}: {exc.strerror or exc}") from exc
    try:
        key = SSlibKey.from_crypto(serialization.load_pem_public_key(data))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(
            f"{path} is not a usable public key: {exc}",
            hint="pass a .pub.pem file written by 'reprover key new'",
        ) from exc
    return key_dict(key)


def computed_keyid(key: dict[str, Any]) -> str | None:
    """The keyid a key dictionary's material hashes to, or None when it is malformed."""
    try:
        return compute_default_keyid(key["keytype"], key["scheme"], key["keyval"])
    except (KeyError, TypeError, sslib_exceptions.FormatError):
        return None


def legacy_keyid(key: dict[str, Any]) -> str | None:
    """The keyid legacy securesystemslib (before 1.0) gave this key, or None.

    Old in-toto tools wrote it: the sha256 of the canonical JSON of `keytype`, `scheme`,
    `keyid_hash_algorithms` (always `["sha256", "sha512"]` there) and `keyval` holding only
    `public`. Only a key dictionary that carries exactly that `keyid_hash_algorithms` field
    (as every legacy key does) has a legacy keyid.
    """
    keyval = key.get("keyval")
    if key.get("keyid_hash_algorithms") != LEGACY_HASH_ALGORITHMS or not isinstance(keyval, dict):
        return None
    legacy = {
        "keyid_hash_algorithms": LEGACY_HASH_ALGORITHMS,
        "keytype": key.get("keytype"),
        "keyval": {"public": keyval.get("public")},
        "scheme": key.get("scheme"),
    }
    try:
        text = encode_canonical(legacy)
    except sslib_exceptions.FormatError:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if isinstance(text, str) else None


def accepted_keyids(key: dict[str, Any]) -> tuple[str, ...]:
    """The keyids under which a layout may list this key: the current one, and the legacy one.

    Exactly the lowercase hex digests securesystemslib computes; no other spelling.
    """
    return tuple(k for k in (computed_keyid(key), legacy_keyid(key)) if k is not None)


def key_material(key: dict[str, Any]) -> bytes | None:
    """The key's canonical identity: its SubjectPublicKeyInfo DER, or None when unusable.

    Two entries are the same key exactly when this is equal, whatever their keyids, schemes
    or the spelling of their public value (hex case, PEM line breaks).
    """
    try:
        public = SSlibKey.from_dict("0", deepcopy(dict(key)))._crypto_key()
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        UnsupportedAlgorithm,
        sslib_exceptions.FormatError,
    ):
        return None


def signature_ok(loaded: Loaded, key: dict[str, Any]) -> bool:
    """Whether `loaded` carries a valid signature by `key`.

    DSSE signatures cover the payload bytes as read; legacy Metablock signatures cover the
    canonical JSON of the parsed payload (the format's own rule).

    A malformed key or signature counts as not valid.
    """
    try:
        loaded.metadata.verify_signature(deepcopy(key))
    except (
        SignatureVerificationError,
        sslib_exceptions.FormatError,
        sslib_exceptions.UnsupportedAlgorithmError,
        ValueError,
        KeyError,
        TypeError,
    ):
        return False
    return True
