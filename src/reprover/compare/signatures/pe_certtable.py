"""PE headers, the Authenticode certificate table and the Authenticode hash, read by hand.

Owns: the file offsets of the fields Authenticode treats specially (the optional header's
`CheckSum`, the security data-directory entry), the structural rules for the certificate table
(it ends exactly at end of file and is a sequence of well-formed `WIN_CERTIFICATE` entries with
only zero padding to 8 bytes), the PE checksum, the Authenticode hash and the labelled byte
regions a signature occupies.
Does not own: decoding or verifying the PKCS#7 inside an entry (`pkcs7`), or the
proofs that combine these parts (`authenticode`).

Nothing here uses LIEF: every offset is read from the bytes with its bounds checked, so a hostile
file cannot make this module read outside it or loop.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from dataclasses import dataclass

from reprover.compare.signatures import der
from reprover.errors import VerificationError
from reprover.model import Kind

PE32 = 0x10B
PE32_PLUS = 0x20B
SECURITY_DIRECTORY = 4
WIN_CERT_REVISION_2_0 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
WIN_CERT_HEADER = 8


class NotPeError(VerificationError):
    """The bytes are not a PE file this module can read."""


@dataclass(frozen=True)
class PeLayout:
    """Where the Authenticode-relevant fields of one PE file lie (all file offsets)."""

    size: int
    checksum_offset: int
    checksum: int
    security_entry_offset: int
    table_offset: int
    table_size: int

    @property
    def signed(self) -> bool:
        """Whether the security directory names a certificate table."""
        return self.table_offset != 0 or self.table_size != 0


@dataclass(frozen=True)
class CertEntry:
    """One `WIN_CERTIFICATE`: its file offset, declared length and the PKCS#7 bytes it holds."""

    index: int
    offset: int
    length: int
    revision: int
    cert_type: int
    pkcs7: bytes


@dataclass(frozen=True)
class SignatureRegion:
    """A labelled byte range of a signed PE that signing wrote (a `model.Difference` shape)."""

    offset: int
    length: int
    region: str
    kind: Kind


def _u16(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", data, off)[0])


def _u32(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", data, off)[0])


def read_layout(data: bytes, name: str) -> PeLayout:
    """Find the checksum and security-directory fields of a PE file.

    Raises:
        NotPeError: not a PE image, or a header lies outside the file.
    """
    size = len(data)
    if size < 0x40 or data[:2] != b"MZ":
        raise NotPeError(f"{name}: not a PE file (no MZ header)")
    pe = _u32(data, 0x3C)
    if pe + 24 + 2 > size:
        raise NotPeError(f"{name}: PE header offset {pe:#x} lies outside the file")
    if data[pe : pe + 4] != b"PE\0\0":
        raise NotPeError(f"{name}: not a PE file (no PE signature at {pe:#x})")
    opt_size = _u16(data, pe + 20)
    opt = pe + 24
    magic = _u16(data, opt)
    if magic == PE32:
        count_off, dirs_off = 92, 96
    elif magic == PE32_PLUS:
        count_off, dirs_off = 108, 112
    else:
        raise NotPeError(f"{name}: unknown optional header magic {magic:#x}")
    if opt + dirs_off > size or dirs_off > opt_size:
        raise NotPeError(f"{name}: optional header is truncated")
    if _u32(data, opt + count_off) <= SECURITY_DIRECTORY:
        raise NotPeError(f"{name}: the optional header has no security data directory")
    entry = opt + dirs_off + SECURITY_DIRECTORY * 8
    if entry + 8 > opt + opt_size or entry + 8 > size:
        raise NotPeError(f"{name}: security data directory lies outside the optional header")
    table_offset, table_size = struct.unpack_from("<II", data, entry)
    return PeLayout(
        size=size,
        checksum_offset=opt + 64,
        checksum=_u32(data, opt + 64),
        security_entry_offset=entry,
        table_offset=int(table_offset),
        table_size=int(table_size),
    )


def align8(value: int) -> int:
    """Round up to a multiple of 8."""
    return (value + 7) & ~7


def read_cert_table(data: bytes, layout: PeLayout, name: str) -> tuple[CertEntry, ...]:
    """Check the certificate table's structure and return its entries.

    The rules: the table starts on an 8-byte boundary, inside the file, and ends exactly at end
    of file; it is a sequence of `WIN_CERTIFICATE` entries (revision 2.0, type PKCS_SIGNED_DATA)
    each starting on an 8-byte boundary; the PKCS#7 in an entry is one DER element and every byte
    after it up to the next 8-byte boundary is zero; nothing else lies in the table.

    Raises:
        VerificationError: any rule is broken; the message names the rule and the offset.
    """
    start, size = layout.table_offset, layout.table_size
    if not layout.signed:
        raise VerificationError(f"{name}: not signed (the security data directory is empty)")
    end = start + size
    if start > layout.size or end > layout.size:
        raise VerificationError(
            f"{name}: the certificate table ({start:#x}+{size:#x}) points outside the file "
            f"({layout.size:#x} bytes)"
        )
    if end != layout.size:
        raise VerificationError(
            f"{name}: {layout.size - end} bytes follow the certificate table "
            f"(it ends at {end:#x}, the file at {layout.size:#x}); data after the signature is "
            "not covered by it"
        )
    if start % 8:
        raise VerificationError(f"{name}: the certificate table at {start:#x} is not 8-aligned")
    if size < WIN_CERT_HEADER:
        raise VerificationError(f"{name}: the certificate table is too small ({size} bytes)")
    entries: list[CertEntry] = []
    pos = start
    while pos < end:
        entry, pos = _read_entry(data, pos, end, len(entries), name)
        entries.append(entry)
    return tuple(entries)


def _read_entry(data: bytes, pos: int, end: int, index: int, name: str) -> tuple[CertEntry, int]:
    """Check one WIN_CERTIFICATE at `pos`; return it and where the next one must start."""
    label = f"{name}: WIN_CERTIFICATE #{index} at {pos:#x}"
    if end - pos < WIN_CERT_HEADER:
        raise VerificationError(f"{label}: {end - pos} trailing bytes are not an entry")
    length, revision, cert_type = struct.unpack_from("<IHH", data, pos)
    if length < WIN_CERT_HEADER or pos + length > end:
        raise VerificationError(f"{label}: dwLength {length} does not fit in the certificate table")
    if revision != WIN_CERT_REVISION_2_0:
        raise VerificationError(f"{label}: wRevision {revision:#06x} is not 0x0200")
    if cert_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA:
        raise VerificationError(
            f"{label}: wCertificateType {cert_type:#06x} is not PKCS_SIGNED_DATA (0x0002)"
        )
    body = pos + WIN_CERT_HEADER
    tlv = der.read_tlv(data, body, pos + length, f"{label}: PKCS#7")
    next_pos = align8(tlv.end)
    if next_pos > end:
        raise VerificationError(f"{label}: padding after the PKCS#7 runs past the table")
    if pos + length > next_pos:
        raise VerificationError(
            f"{label}: dwLength {length} covers {pos + length - tlv.end} bytes after the "
            "PKCS#7 structure beyond its padding to 8 (data hidden inside the certificate "
            "area, the CVE-2013-3900 shape)"
        )
    if any(data[tlv.end : next_pos]):
        raise VerificationError(
            f"{label}: non-zero bytes after the PKCS#7 structure at {tlv.end:#x} (data hidden "
            "inside the certificate area, the CVE-2013-3900 shape)"
        )
    return CertEntry(index, pos, length, revision, cert_type, tlv.raw), next_pos


def pe_checksum(data: bytes | bytearray, checksum_offset: int) -> int:
    """The PE image checksum (ones'-complement word sum, carries folded, plus the file size)."""
    buf = bytearray(data)
    buf[checksum_offset : checksum_offset + 4] = b"\0\0\0\0"
    if len(buf) % 2:
        buf.append(0)
    words = array("H")
    words.frombytes(bytes(buf))
    if sys.byteorder != "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def authenticode_hash(data: bytes, layout: PeLayout, algorithm: str) -> bytes:
    """The Authenticode hash: every byte but the checksum, the security entry and the table.

    An unsigned file is hashed as if padded with zeros to a multiple of 8, as signing pads it
    before appending the table. The hash is linear over the file (like osslsigncode); for an
    image whose sections are contiguous and follow the headers it equals the section-wise hash
    of the Authenticode specification.

    Raises:
        VerificationError: the hash algorithm is unknown.
    """
    try:
        digest = hashlib.new(algorithm)
    except ValueError as exc:
        raise VerificationError(f"unsupported Authenticode hash algorithm {algorithm}") from exc
    view = memoryview(data)
    digest.update(view[: layout.checksum_offset])
    digest.update(view[layout.checksum_offset + 4 : layout.security_entry_offset])
    stop = layout.table_offset if layout.signed else len(data)
    digest.update(view[layout.security_entry_offset + 8 : stop])
    if not layout.signed:
        digest.update(b"\0" * (align8(len(data)) - len(data)))
    return digest.digest()


def signature_regions(
    layout: PeLayout, entries: tuple[CertEntry, ...], *, unsigned_size: int | None = None
) -> tuple[SignatureRegion, ...]:
    """Label every byte range signing wrote in a signed PE, in file order.

    `unsigned_size` is the size of the file before signing, when known: the bytes between it
    and the table are the signer's zero padding.
    """
    regions = [
        SignatureRegion(layout.checksum_offset, 4, "pe.optional_header.CheckSum", Kind.CHECKSUM),
        SignatureRegion(
            layout.security_entry_offset, 8, "pe.data_directory[SECURITY]", Kind.SIGNATURE
        ),
    ]
    if unsigned_size is not None and unsigned_size < layout.table_offset:
        regions.append(
            SignatureRegion(
                unsigned_size,
                layout.table_offset - unsigned_size,
                "pe.certificate_table.alignment",
                Kind.PADDING,
            )
        )
    for i, entry in enumerate(entries):
        regions.append(
            SignatureRegion(
                entry.offset,
                WIN_CERT_HEADER + len(entry.pkcs7),
                f"pe.certificate_table[{entry.index}]",
                Kind.SIGNATURE,
            )
        )
        pad_start = entry.offset + WIN_CERT_HEADER + len(entry.pkcs7)
        pad_end = entries[i + 1].offset if i + 1 < len(entries) else layout.size
        if pad_end > pad_start:
            regions.append(
                SignatureRegion(
                    pad_start,
                    pad_end - pad_start,
                    f"pe.certificate_table[{entry.index}].padding",
                    Kind.PADDING,
                )
            )
    return tuple(regions)
