"""Prove that a signed MSI is exactly its unsigned rebuild plus an Authenticode signature.

Owns: the MSI Authenticode hash (every stream of the root storage but the signature streams,
in the order of their raw UTF-16 names, then the root's CLSID; as osslsigncode and Windows
compute it, streamed) and `prove_msi_signature_only`: the released file's streams are the
rebuilt file's streams, byte for byte, plus `\\x05DigitalSignature` and nothing else; the root
CLSID is the same; the PKCS#7 in that stream names the rebuild's MSI hash (SpcSipInfo) and
verifies (`signatures.pkcs7`), chaining to pinned certificates when there are any. Everything
else the two compound files differ in is their sector layout, which `ole.read_ole` has already
accounted for byte by byte.
Does not own: the PKCS#7 grammar and trust (`signatures.pkcs7`, `signatures.trust`), deciding
the verdict (`driver`).

Refused, so the artifact stays `different`: `\\x05MsiDigitalSignatureEx` (the extended
signature also hashes metadata; not implemented), storages (nested folders: not implemented).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import olefile

from reprover.compare.archives.listing import Listing
from reprover.compare.signatures.pkcs7 import SPC_SIPINFO, SignerDetails, verify_authenticode
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError

SIGNATURE = "\x05DigitalSignature"
EXTENDED = "\x05MsiDigitalSignatureEx"
ROOT_CLSID = 0x50


def _meta(path: Path) -> tuple[dict[str, bytes], bytes]:
    """Raw UTF-16LE names of the root's streams by name, and the root CLSID (16 raw bytes).

    Raises:
        VerificationError: storages are present, or the file does not parse.
    """
    try:
        ole = olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT)
    except (OSError, ValueError, IndexError) as exc:
        raise VerificationError(f"{path.name}: not a compound file: {exc}") from exc
    with ole:
        names = {}
        for entry in ole.direntries:
            if entry is None or entry.sid == 0:
                continue
            if entry.entry_type == olefile.STGTY_STORAGE:
                raise VerificationError("MSI storages are not supported by the signature proof")
            names[entry.name] = entry.name.encode("utf-16-le")
        ole.fp.seek((ole.first_dir_sector + 1) * ole.sectorsize + ROOT_CLSID)
        clsid = ole.fp.read(16)
    return names, clsid


def msi_hash(listing: Listing, raw_names: dict[str, bytes], clsid: bytes, algorithm: str) -> bytes:
    """The Authenticode hash of an MSI read by `ole.read_ole` (members keyed by decoded name).

    Raises:
        VerificationError: a stream named in the directory is missing from the listing.
    """
    from reprover.compare.archives.ole import msi_name  # noqa: PLC0415 - avoid a cycle

    by_name = {m.name: m for m in listing.members}
    digest = hashlib.new(algorithm)
    for name in sorted(raw_names, key=lambda n: raw_names[n] + b"\0\0"):
        if name in (SIGNATURE, EXTENDED):
            continue
        member = by_name.get(msi_name(name))
        if member is None or member.opener is None:
            raise VerificationError(f"stream {msi_name(name)!r} cannot be read")
        for block in member.opener():
            digest.update(block)
    digest.update(clsid)
    return digest.digest()


def prove_msi_signature_only(
    files: tuple[Path, Path], listings: tuple[Listing, Listing], trusted: tuple[Path, ...]
) -> tuple[SignerDetails, ...]:
    """Prove released = rebuilt + an Authenticode signature stream; return the signers.

    `files` and `listings` are (released, rebuilt), the listings from `ole.read_ole`.

    Raises:
        VerificationError: any part of the proof fails; the message says which.
        InputError: a pinned certificate cannot be read.
    """
    anchors = load_trusted(trusted)
    (rel_names, rel_clsid), (reb_names, reb_clsid) = _meta(files[0]), _meta(files[1])
    if EXTENDED in rel_names:
        raise VerificationError("MsiDigitalSignatureEx is not supported by the signature proof")
    if SIGNATURE in reb_names:
        raise VerificationError("the rebuilt MSI is already signed; compare an unsigned rebuild")
    if SIGNATURE not in rel_names:
        raise VerificationError("the released MSI has no DigitalSignature stream")
    if set(rel_names) - {SIGNATURE} != set(reb_names):
        raise VerificationError(
            "the released MSI holds other streams than the rebuild plus its signature"
        )
    if rel_clsid != reb_clsid:
        raise VerificationError("the released and rebuilt MSI have different root CLSIDs")
    released, rebuilt = listings
    rel_members = {m.name: m for m in released.members}
    for member in rebuilt.members:
        other = rel_members[member.name]
        if _digest(member) != _digest(other):
            raise VerificationError(f"stream {member.name!r} differs from the rebuild's")
    signature = rel_members[SIGNATURE]
    if signature.opener is None:
        raise VerificationError("the DigitalSignature stream cannot be read")
    blob = b"".join(signature.opener())
    cache: dict[str, bytes] = {}

    def expected(algorithm: str) -> bytes:
        if algorithm not in cache:
            cache[algorithm] = msi_hash(rebuilt, reb_names, reb_clsid, algorithm)
        return cache[algorithm]

    signers = verify_authenticode(blob, expected, trusted=anchors, label="MSI signature",
                                  content=SPC_SIPINFO)  # fmt: skip
    return tuple(signers)


def _digest(member: object) -> str:
    h = hashlib.sha256()
    opener = getattr(member, "opener", None)
    if opener is not None:
        for block in opener():
            h.update(block)
    return h.hexdigest()
