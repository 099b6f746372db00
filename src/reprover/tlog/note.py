"""C2SP signed notes with Ed25519 keys, and tlog-cosignature/v1 witness cosignatures.

Owns: key IDs (SHA-256(name || 0x0A || type || public key)[:4]), verifier key strings
(`<name>+<hex key ID>+<base64(type || public key)>`), signing a note text, opening a signed
note (text, then signature lines `— <name> <base64(key ID || signature)>`) against trusted
keys, and Ed25519 cosignatures (type 0x04) over `cosignature/v1\\ntime <t>\\n<checkpoint>`.
Does not own: what the note text says (see `reprover.tlog.checkpoint`) or loading PEM keys.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reprover.errors import InputError, VerificationError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
MAX_NOTE = 1 << 20
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "
_NAME = re.compile(r"[^\s+]+")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: its name, type (0x01 log, 0x04 cosigner) and Ed25519 key bytes."""

    name: str
    alg: int
    public: bytes

    @property
    def key_id(self) -> int:
        """The 32-bit key ID a signature line starts with."""
        return key_id(self.name, self.alg, self.public)

    @property
    def vkey(self) -> str:
        """The verifier key string others pin."""
        material = base64.b64encode(bytes([self.alg]) + self.public).decode()
        return f"{self.name}+{self.key_id:08x}+{material}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A signed note split into its text and its signature lines (unverified)."""

    text: bytes
    signatures: tuple[Signature, ...]


def key_id(name: str, alg: int, public: bytes) -> int:
    """SHA-256(name || 0x0A || alg || public)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def check_name(name: str, what: str = "key name") -> None:
    """Raise InputError unless `name` is a valid note key name (no spaces, no '+').

    Raises:
        InputError: it is empty or has a space, a plus or a control character.
    """
    if not _NAME.fullmatch(name) or _CONTROL.search(name):
        raise InputError(f"{what} {name!r} must be non-empty, without spaces or '+'")


def verifier_for(name: str, key: Ed25519PrivateKey, alg: int = ED25519) -> Verifier:
    """The verifier of a private key under `name` (alg 0x01 for a log, 0x04 for a witness)."""
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Verifier(name, alg, public)


def parse_vkey(text: str) -> Verifier:
    """Parse `<name>+<hex key ID>+<base64(type || key)>` (Ed25519 or cosignature/v1).

    Raises:
        InputError: the string is malformed, its key ID does not match, or the type is not
            0x01 or 0x04.
    """
    text = text.strip()
    parts = text.split("+", 2)
    if len(parts) != 3 or len(parts[1]) != 8:
        raise InputError(f"{text!r} is not a verifier key (NAME+KEYID+BASE64KEY)")
    name, hex_id, b64 = parts
    check_name(name)
    try:
        wanted = int(hex_id, 16)
        material = base64.b64decode(b64, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InputError(f"verifier key {text!r} is malformed: {exc}") from exc
    if len(material) != 33 or material[0] not in (ED25519, COSIGNATURE_V1):
        raise InputError(f"verifier key {text!r} is not an Ed25519 (0x01 or 0x04) key")
    verifier = Verifier(name, material[0], material[1:])
    if verifier.key_id != wanted or hex_id != hex_id.lower():
        raise InputError(f"verifier key {text!r}: the key ID does not match the key")
    return verifier


def signature_line(name: str, kid: int, signature: bytes) -> bytes:
    """One note signature line, newline included."""
    b64 = base64.b64encode(kid.to_bytes(4, "big") + signature).decode()
    return f"{_SIG_PREFIX}{name} {b64}\n".encode()


def sign(text: bytes, name: str, key: Ed25519PrivateKey) -> bytes:
    """A signed note: `text`, a blank line, and this key's Ed25519 (0x01) signature line."""
    verifier = verifier_for(name, key)
    return text + b"\n" + signature_line(name, verifier.key_id, key.sign(text))


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header line, time line, then the checkpoint text."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


def cosign(text: bytes, name: str, key: Ed25519PrivateKey, timestamp: int) -> bytes:
    """A cosignature/v1 signature line (type 0x04) over the note `text` at `timestamp`."""
    verifier = verifier_for(name, key, COSIGNATURE_V1)
    signature = key.sign(cosignature_message(text, timestamp))
    return signature_line(name, verifier.key_id, timestamp.to_bytes(8, "big") + signature)


def parse(data: bytes) -> Note:
    """Split a signed note into text and signature lines without verifying anything.

    Raises:
        InputError: it is too large, not UTF-8, has control characters, no signature block,
            or a malformed signature line.
    """
    if len(data) > MAX_NOTE:
        raise InputError(f"the signed note is larger than {MAX_NOTE} bytes")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("the signed note is not UTF-8") from exc
    if _CONTROL.search(decoded):
        raise InputError("the signed note has control characters")
    split = data.rfind(b"\n\n")
    if split < 0 or not data.endswith(b"\n"):
        raise InputError("the signed note has no signature block")
    text, block = data[: split + 1], data[split + 2 :]
    signatures: list[Signature] = []
    for raw in block.decode().split("\n")[:-1]:  # newline only, as Go's note.Open splits
        if not raw.startswith(_SIG_PREFIX):
            raise InputError(f"malformed signature line {raw[:80]!r}")
        name, _, b64 = raw[len(_SIG_PREFIX) :].partition(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise InputError(f"malformed signature line {raw[:80]!r}") from exc
        if not _NAME.fullmatch(name) or len(sig) < 5:
            raise InputError(f"malformed signature line {raw[:80]!r}")
        signatures.append(Signature(name, int.from_bytes(sig[:4], "big"), sig[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise InputError(f"a signed note needs 1 to {MAX_SIGNATURES} signatures")
    return Note(text, tuple(signatures))


def open_note(data: bytes, log: Verifier) -> Note:
    """Parse a signed note and require a valid signature by the log's key.

    Raises:
        InputError: the note is malformed.
        VerificationError: no signature by the log's key, or one that does not verify.
    """
    note = parse(data)
    found = False
    for sig in note.signatures:
        if sig.name == log.name and sig.key_id == log.key_id:
            if not log.verify(note.text, sig.signature):
                raise VerificationError(
                    f"the signature by {log.name} on the checkpoint does not verify"
                )
            found = True
    if not found:
        raise VerificationError(
            f"the checkpoint is not signed by the trusted log key {log.vkey}",
            hint="check that --vkey is this log's key; a checkpoint signed by another key is "
            "not trusted",
        )
    return note


def verify_cosignatures(note: Note, witnesses: Sequence[Verifier]) -> list[str]:
    """The names of the trusted witnesses whose cosignature/v1 on the note verifies.

    Signatures by unknown keys are ignored, as the spec says; a known witness's signature that
    does not verify rejects the note.

    Raises:
        VerificationError: a trusted witness's cosignature does not verify.
    """
    good: list[str] = []
    by_id = {(w.name, w.key_id): w for w in witnesses if w.alg == COSIGNATURE_V1}
    for sig in note.signatures:
        witness = by_id.get((sig.name, sig.key_id))
        if witness is None or witness.name in good:
            continue
        if len(sig.signature) != 8 + 64:
            raise VerificationError(f"the cosignature by {witness.name} is malformed")
        timestamp = int.from_bytes(sig.signature[:8], "big")
        message = cosignature_message(note.text, timestamp)
        if timestamp >= 1 << 63 or not witness.verify(message, sig.signature[8:]):
            raise VerificationError(f"the cosignature by witness {witness.name} does not verify")
        good.append(witness.name)
    return good


def distinct_keys(verifiers: Iterable[Verifier]) -> list[Verifier]:
    """Verifiers with duplicate public keys dropped (one key counts once toward a threshold)."""
    seen: set[bytes] = set()
    out: list[Verifier] = []
    for verifier in verifiers:
        if verifier.public not in seen:
            seen.add(verifier.public)
            out.append(verifier)
    return out
