"""Apple's CMS code signature (Developer ID style): a detached SignedData over the CodeDirectory.

Owns: verifying the CMS BlobWrapper of a Mach-O code signature: empty (8 bytes, what
`codesign -s -` writes: ad-hoc, no signer) or a detached CMS SignedData held to the closed
grammar of `cms`, whose signer's messageDigest is the hash of the CodeDirectory (slot 0), whose
only allowed unsigned attribute is an RFC 3161 timestamp token (`id-aa-timeStampToken`), and,
with pinned certificates, whose signer chains to one with the code-signing usage.
Does not own: the SuperBlob (`macho_blobs`) or the page hashes (`macho`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from reprover.compare.signatures import cms
from reprover.compare.signatures.timestamps import (
    TIMESTAMP_TOKEN,
    Countersignature,
    checked_at,
    timestamp_tokens,
)
from reprover.compare.signatures.trust import CODE_SIGNING, chain_to_trust, require_on_chains
from reprover.errors import VerificationError

ID_DATA = "1.2.840.113549.1.7.1"


@dataclass(frozen=True)
class CmsSigner:
    """A verified CMS signer of a CodeDirectory."""

    subject: str
    issuer: str
    serial: str
    organizational_unit: str | None
    chain: tuple[str, ...]
    countersignatures: tuple[Countersignature, ...]


def verify_cms(
    wrapper: bytes,
    code_directory: bytes,
    *,
    trusted: Sequence[x509.Certificate],
    base: int,
    name: str,
    now: datetime | None = None,
) -> CmsSigner | None:
    """Verify a CMS BlobWrapper over `code_directory`; None for the empty (ad-hoc) wrapper.

    Raises:
        VerificationError: outside the grammar, not over this CodeDirectory, or (with
            `trusted`) the signer does not chain to a pinned certificate.
    """
    body = wrapper[8:]
    if not body:
        return None
    what = f"{name}: CMS signature"
    sd = cms.parse_signed_data(body, what, base=base + 8)
    if sd.content_type != ID_DATA or sd.content is not None:
        raise VerificationError(f"{what}: not a detached signature over data")
    signer = cms.verify_signer_info(sd, code_directory, ID_DATA, frozenset({TIMESTAMP_TOKEN}), what)
    stamps = timestamp_tokens(sd, signer, trusted, what)
    require_on_chains(sd.certs, [signer.cert], what)
    chain: tuple[str, ...] = ()
    if trusted:
        at = checked_at(stamps, now)
        chain = chain_to_trust(signer.cert, sd.certs, trusted, usage=CODE_SIGNING, at=at, what=what)
    units = signer.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return CmsSigner(
        subject=signer.cert.subject.rfc4514_string(),
        issuer=signer.cert.issuer.rfc4514_string(),
        serial=f"{signer.cert.serial_number:x}",
        organizational_unit=str(units[0].value) if units else None,
        chain=chain,
        countersignatures=tuple(stamps),
    )
