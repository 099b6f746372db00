"""Prove that a signed PE is exactly an unsigned rebuild plus a valid Authenticode signature.

Owns: the public proof `prove_signature_only` and its result `SignatureProof`, and lenient
labelling of the bytes a signature occupies (`label_signature_regions`) for the ledger.
Does not own: the PE byte layout and hash (`pe_certtable`), the PKCS#7
(`pkcs7`), trust anchors (`trust`), or the verdict
(the caller decides `signature-only` from policy; this module only proves or raises).

The proof has three parts and all must hold:

1. Structure: the certificate table ends exactly at end of file and holds only well-formed
   `WIN_CERTIFICATE` entries, each one DER PKCS#7 followed by at most its zero padding to 8.
2. Transplant: the rebuilt file, zero-padded to 8, with the released file's certificate table
   appended, its security directory entry set and its checksum either unchanged or correctly
   recomputed, is byte for byte the released file. So every byte outside the signature is the
   rebuild's.
3. Digest and cryptography: in every signature (nested ones included) the SpcIndirectData digest
   equals the Authenticode hash of the rebuilt file, the signed attributes verify with the
   signer's certificate, and with pinned certificates the signer chains to one of them with the
   code-signing usage. Unsigned attributes are limited to verified timestamps and nested
   signatures.

Files are read whole into memory; the Authenticode hash is computed here in pure Python, never
by LIEF, so no native parser touches the untrusted bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reprover.compare.signatures import quoted
from reprover.compare.signatures.pe_certtable import (
    NotPeError,
    PeLayout,
    SignatureRegion,
    align8,
    authenticode_hash,
    pe_checksum,
    read_cert_table,
    read_layout,
    signature_regions,
)
from reprover.compare.signatures.pkcs7 import SignerDetails, verify_authenticode
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import InputError, VerificationError
from reprover.model import Difference, Kind

__all__ = [
    "SignatureProof",
    "SignatureRegion",
    "SignerDetails",
    "as_differences",
    "label_signature_regions",
    "prove_signature_only",
]


@dataclass(frozen=True)
class SignatureProof:
    """What was proven about a signed release and its unsigned rebuild.

    `signers` lists every verified signature, outer first then nested. `regions` are the byte
    ranges of the released file that signing wrote (checksum, directory entry, padding, table).
    `pinned` says whether the signers were chained to pinned certificates.
    """

    format: str
    signers: tuple[SignerDetails, ...]
    regions: tuple[SignatureRegion, ...]
    checksum_rule: str
    pinned: bool

    def summary(self) -> str:
        """One line: who signed, how, and what was proven."""
        trust = "every signer chains to pinned trust" if self.pinned else "signer not pinned"
        names = "; ".join(quoted(s.subject) for s in self.signers)
        count = f"{len(self.signers)} signers: " if len(self.signers) > 1 else ""
        return f"released = rebuilt + Authenticode signature; signed by {count}{names} ({trust})"

    def findings(self) -> tuple[str, ...]:
        """Lines describing every signer and every region, for reports."""
        lines = [line for s in self.signers for line in s.describe()]
        lines.append(f"checksum: {self.checksum_rule}")
        return tuple(lines)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _first_difference(a: bytes | bytearray, b: bytes | bytearray) -> int:
    step = 1 << 16
    for pos in range(0, min(len(a), len(b)), step):
        if a[pos : pos + step] != b[pos : pos + step]:
            return next(i for i in range(pos, pos + step) if a[i] != b[i])
    return min(len(a), len(b))


def _transplant(released: bytes, rel: PeLayout, rebuilt: bytes, reb: PeLayout) -> str:
    """Rebuild the released file from the rebuild and the signature; return the checksum rule."""
    if (reb.checksum_offset, reb.security_entry_offset) != (
        rel.checksum_offset,
        rel.security_entry_offset,
    ):
        raise VerificationError("the released and rebuilt PE headers have different layouts")
    if rel.table_offset != align8(reb.size):
        raise VerificationError(
            f"the certificate table starts at {rel.table_offset:#x}, but the rebuilt file "
            f"({reb.size:#x} bytes) padded to 8 ends at {align8(reb.size):#x}: the released file "
            "is not the rebuilt file plus a signature"
        )
    candidate = bytearray(rebuilt)
    candidate += b"\0" * (rel.table_offset - reb.size)
    candidate += released[rel.table_offset :]
    struct.pack_into("<II", candidate, rel.security_entry_offset, rel.table_offset, rel.table_size)
    struct.pack_into("<I", candidate, rel.checksum_offset, rel.checksum)
    if bytes(candidate) != released:
        at = _first_difference(candidate, released)
        raise VerificationError(
            f"the released file differs from the rebuilt file outside the signature: first "
            f"differing byte at {at:#x} (transplanting the signature onto the rebuild does not "
            "give the released file)"
        )
    recomputed = pe_checksum(candidate, rel.checksum_offset)
    if rel.checksum == recomputed:
        rule = f"recomputed for the signed file ({recomputed:#010x})"
    elif rel.checksum == reb.checksum:
        rule = f"unchanged from the rebuilt file ({reb.checksum:#010x})"
    else:
        raise VerificationError(
            f"the released CheckSum {rel.checksum:#010x} is neither the rebuilt file's "
            f"({reb.checksum:#010x}) nor the signed file's correct checksum ({recomputed:#010x})"
        )
    return rule


def prove_signature_only(
    released: Path,
    rebuilt: Path,
    *,
    trusted: Sequence[Path | bytes] = (),
    now: datetime | None = None,
) -> SignatureProof:
    """Prove released = rebuilt + a valid Authenticode signature, and nothing else.

    Args:
        released: the signed file.
        rebuilt: the unsigned rebuild.
        trusted: pinned certificates (files, or their PEM/DER bytes already read); when given,
            every signer, nested ones included, must chain to one of them with the
            code-signing usage.
        now: the time at which to check certificate validity without a pinned timestamp
            (default: the current time).

    Raises:
        InputError: a file or a pinned certificate cannot be read.
        VerificationError: a proof failed; the message says which and why.
    """
    anchors = load_trusted(trusted)
    released_data = _read(released)
    rebuilt_data = _read(rebuilt)
    rel = read_layout(released_data, "released file")
    reb = read_layout(rebuilt_data, "rebuilt file")
    if reb.signed:
        raise VerificationError(
            "the rebuilt file already names a certificate table; compare an unsigned rebuild"
        )
    entries = read_cert_table(released_data, rel, "released file")
    rule = _transplant(released_data, rel, rebuilt_data, reb)
    cache: dict[str, bytes] = {}

    def expected(algorithm: str) -> bytes:
        if algorithm not in cache:
            cache[algorithm] = authenticode_hash(rebuilt_data, reb, algorithm)
        return cache[algorithm]

    signers: list[SignerDetails] = []
    for entry in entries:
        signers.extend(
            verify_authenticode(
                entry.pkcs7,
                expected,
                trusted=anchors,
                label=f"signature #{entry.index}",
                now=now,
                base=entry.offset + 8,
            )
        )
    return SignatureProof(
        format="pe",
        signers=tuple(signers),
        regions=signature_regions(rel, entries, unsigned_size=reb.size),
        checksum_rule=rule,
        pinned=bool(anchors),
    )


def label_signature_regions(data: bytes) -> tuple[SignatureRegion, ...]:
    """Label the bytes a PE signature occupies, leniently, for a ledger of differences.

    Returns the checksum field, the security directory entry and the certificate table (per
    entry when the table is well formed, else as one `pe.certificate_table` range clipped to
    the file). Returns an empty tuple for data that is not a PE file. Never raises.
    """
    try:
        layout = read_layout(data, "file")
    except NotPeError:
        return ()
    if not layout.signed:
        return signature_regions(layout, ())
    try:
        return signature_regions(layout, read_cert_table(data, layout, "file"))
    except VerificationError:
        start = min(layout.table_offset, layout.size)
        end = min(layout.table_offset + layout.table_size, layout.size)
        base = signature_regions(layout, ())
        if end > start:
            return (
                *base,
                SignatureRegion(start, end - start, "pe.certificate_table", Kind.SIGNATURE),
            )
        return base


def as_differences(regions: Sequence[SignatureRegion]) -> tuple[Difference, ...]:
    """The regions as `model.Difference` values (not allowed; the policy decides)."""
    return tuple(
        Difference(offset=r.offset, length=r.length, region=r.region, kind=r.kind) for r in regions
    )


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` in hex (for reports that cite the bytes proven)."""
    return hashlib.sha256(data).hexdigest()
