"""Signing keys on disk: ed25519 pairs in the PEM formats in-toto's own tools read.

Owns: generating a key pair (private PKCS#8 PEM, mode 0600, optional passphrase; public
SubjectPublicKeyInfo PEM), loading a private key as a securesystemslib `Signer` (or as a raw
ed25519 key, for the evidence log's signed notes) and a public key as a securesystemslib
`Key`. Keys are referenced by path everywhere.
Does not own: what is signed with them (see `reprover.intoto` and `reprover.attest`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from reprover.errors import InputError
from reprover.fsutil import write_atomic


def generate(name: str, folder: Path, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write `NAME.pem` (private, 0600) and `NAME.pub.pem` (public) into `folder`.

    Returns:
        The paths of the private and the public key.

    Raises:
        InputError: the name is not a plain file name, or a key of that name already exists.
        InconclusiveError: the files cannot be written.
    """
    if not name or "/" in name or name in {".", ".."} or name.startswith("-"):
        raise InputError(f"key name {name!r} must be a plain file name")
    private_path, public_path = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path} already exists", hint="choose another name or folder")
    key = ed25519.Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomic(private_path, private_pem, mode=0o600)
    write_atomic(public_path, public_pem, mode=0o644)
    return private_path, public_path


def load_signer(path: Path, passphrase: bytes | None = None) -> CryptoSigner:
    """Load a private PEM key (ed25519, ecdsa or rsa) as a securesystemslib signer.

    Raises:
        InputError: the file is unreadable, not a private key, encrypted without a passphrase
            or with the wrong one, or of an unsupported type.
    """
    data = _read(path, "private key")
    try:
        private_key = serialization.load_pem_private_key(data, password=passphrase or None)
        return CryptoSigner(private_key)
    except TypeError as exc:
        raise InputError(
            f"{path} is encrypted and no passphrase was given",
            hint="pass the key's passphrase, or use an unencrypted key",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not a usable private key: {exc}") from exc


def load_ed25519(path: Path, passphrase: bytes | None = None) -> ed25519.Ed25519PrivateKey:
    """Load a private PEM key that must be ed25519 (signed notes and log checkpoints).

    Raises:
        InputError: the file is unreadable, not a private key, wrongly encrypted, or not
            ed25519.
    """
    data = _read(path, "private key")
    try:
        private_key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        raise InputError(f"{path} is encrypted and no passphrase was given") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not a usable private key: {exc}") from exc
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise InputError(
            f"{path} is not an ed25519 key", hint="make one with 'reprover key new NAME'"
        )
    return private_key


def load_public_key(path: Path) -> Key:
    """Load a public PEM key as a securesystemslib `Key` (its keyid is the in-toto keyid).

    Raises:
        InputError: the file is unreadable, not a public key, or of an unsupported type.
    """
    data = _read(path, "public key")
    try:
        public_key = serialization.load_pem_public_key(data)
        return SSlibKey.from_crypto(public_key)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(
            f"{path} is not a usable public key: {exc}",
            hint="pass the .pub.pem file written by 'reprover key new'",
        ) from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
