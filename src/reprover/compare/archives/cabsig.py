"""Prove that a signed cabinet is exactly its unsigned rebuild plus an Authenticode signature.

Owns: the header a signer writes into a cabinet (`signed_head`: as osslsigncode's
`cab_add_header` writes it: the reserve flag, a 20-byte cbCFHeader reserve holding
`00 00 10 00`, the signature's offset and size and eight zero bytes, and every offset after it
(cbCabinet, coffFiles, each folder's coffCabStart) moved 24 bytes on), the CAB Authenticode
hash (`cab_hash`: every byte but reserved1 and bytes 34..55, up to the signature; streamed),
and `prove_cab_signature_only`: the released cabinet is, byte for byte, the header that
signing the rebuild gives, then the rebuild's bytes from its first file entry to its end,
then one DER PKCS#7 and at most 7 zero bytes of padding up to the end of the file; the
PKCS#7 names the CAB hash of the rebuild as signed (computed from the rebuild, never from the
released file's claims) and verifies (`signatures.pkcs7`), chaining to pinned certificates
when any are given.
With files whose content differs but that the driver accepted on their own (signed DLLs
packed before the cabinet was signed), the released cabinet before signing (its header with
the reserve taken out) is the one signed: the header must be what signing gives for it, and
the signature must name the hash of the released bytes; every other difference from the
rebuild (sizes, data blocks, which `cabzip` checks are gcab's) is the driver's.
Does not own: the PKCS#7 grammar and trust (`signatures.pkcs7`, `signatures.trust`), reading
the cabinet's members (`cabfmt`), deciding the verdict (`driver`).

Refused, so the artifact stays `different`: a rebuild that already has a header reserve (signed,
or reserving space of its own), a rebuild whose declared size is not its size or whose file
entries do not follow its folders directly (osslsigncode's own hash refuses that layout), and
cabinets of a set (previous/next cabinet names): osslsigncode 2.9 to 2.15 signs them without
hashing the names but verifies with them, so which bytes Windows signs there is not known.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reprover.compare.archives.listing import CHUNK, Listing
from reprover.compare.signatures import der
from reprover.compare.signatures.pkcs7 import SignerDetails, verify_authenticode
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError

SPC_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"  # the signed content of a cabinet's signature
RESERVE_FLAG, PREV, NEXT = 4, 1, 2
RESERVE_MAGIC = b"\0\0\x10\0"  # the first 4 bytes of a signature reserve
SHIFT = 24  # cbCFHeader, cbCFFolder, cbCFData (4 bytes) and the 20-byte reserve
HEADER = 36  # the fixed header of an unsigned cabinet
SIGNED_HEADER = HEADER + SHIFT
MAX_SIGNATURE = 16 << 20  # the PKCS#7 is parsed in memory
PAD = 8
FIELDS = (  # (start, end, name) of the signed header, for messages
    (0, 4, "signature MSCF"), (4, 8, "reserved1"), (8, 12, "cbCabinet"), (12, 16, "reserved2"),
    (16, 20, "coffFiles"), (20, 24, "reserved3"), (24, 26, "version"), (26, 28, "cFolders"),
    (28, 30, "cFiles"), (30, 32, "flags"), (32, 34, "setID"), (34, 36, "iCabinet"),
    (36, 40, "cbCFHeader, cbCFFolder, cbCFData"), (40, 44, "the signature reserve's magic"),
    (44, 48, "the signature offset"), (48, 52, "the signature size"),
    (52, 60, "the signature reserve's zero bytes"),
)  # fmt: skip


@dataclass(frozen=True)
class Unsigned:
    """The layout of an unsigned cabinet: its size, flags, and where its file entries start."""

    size: int
    flags: int
    folders: int
    coff_files: int


def _read(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise VerificationError(f"{what} is truncated at offset {offset}")
    return data


def unsigned_layout(f: BinaryIO, size: int, what: str = "the rebuilt cabinet") -> Unsigned:
    """Read the header of an unsigned cabinet (`what`: the rebuild, by default).

    Raises:
        VerificationError: it is not an unsigned cabinet osslsigncode would sign as is.
    """
    head = _read(f, 0, HEADER, what)
    magic, cb_cabinet, coff_files, folders, flags = (
        head[:4], *struct.unpack_from("<I", head, 8), *struct.unpack_from("<I", head, 16),
        *struct.unpack_from("<H", head, 26), *struct.unpack_from("<H", head, 30),
    )  # fmt: skip
    if magic != b"MSCF":
        raise VerificationError(f"{what} is not a cabinet")
    if flags & RESERVE_FLAG:
        raise VerificationError(
            f"{what} already has a header reserve (signed?); compare an unsigned rebuild"
        )
    if flags & (PREV | NEXT):
        raise VerificationError(
            "cabinets of a set (previous or next cabinet names) are not supported by the "
            "signature proof: osslsigncode signs without hashing the names but verifies with them"
        )
    if cb_cabinet != size:
        raise VerificationError(f"{what} declares {cb_cabinet} bytes but holds {size}")
    if size + SHIFT > 0xFFFFFFFF:
        raise VerificationError(f"{what} is too large to be signed (cbCabinet would overflow)")
    if coff_files != HEADER + 8 * folders or coff_files > size:
        raise VerificationError(f"{what}: its file entries do not follow its folders directly")
    return Unsigned(size, flags, folders, coff_files)


def signed_head(f: BinaryIO, layout: Unsigned, sig_len: int) -> bytes:
    """The first bytes of the rebuilt cabinet signed with a `sig_len`-byte signature, up to
    its first file entry, as osslsigncode writes them (`cab_add_header`).

    Raises:
        VerificationError: the rebuild cannot be read.
    """
    old = _read(f, 0, layout.coff_files, "the rebuilt cabinet")
    out = bytearray(old[:8])
    out += struct.pack("<I", layout.size + SHIFT) + old[12:16]
    out += struct.pack("<I", layout.coff_files + SHIFT) + old[20:30]
    out += struct.pack("<H", layout.flags | RESERVE_FLAG) + old[32:36]
    out += struct.pack("<HBB", 20, 0, 0) + RESERVE_MAGIC
    out += struct.pack("<II", layout.size + SHIFT, sig_len) + bytes(8)
    for i in range(layout.folders):
        at = HEADER + 8 * i
        (start,) = struct.unpack_from("<I", old, at)
        if start + SHIFT > 0xFFFFFFFF:
            raise VerificationError("the rebuilt cabinet's folder offsets overflow when signed")
        out += struct.pack("<I", start + SHIFT) + old[at + 4 : at + 8]
    return bytes(out)


def cab_hash(head: bytes, body: Iterator[bytes], algorithm: str) -> bytes:
    """The Authenticode hash of a signed cabinet: `head` (from `signed_head`) then `body`,
    its bytes from the first file entry up to the signature (osslsigncode `cab_digest_calc`).

    Skipped, as osslsigncode's verify skips them: reserved1 (4..7), iCabinet, cbCFHeader,
    cbCFFolder, cbCFData and the reserve up to its last 4 bytes (34..55).
    """
    digest = hashlib.new(algorithm)
    digest.update(head[:4])
    digest.update(head[8:34])
    digest.update(head[56:])
    for block in body:
        digest.update(block)
    return digest.digest()


def _stream(f: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    f.seek(start)
    left = end - start
    while left:
        block = f.read(min(CHUNK, left))
        if not block:
            raise VerificationError("a cabinet is truncated")
        left -= len(block)
        yield block


def _field(offset: int) -> str:
    return next((name for start, end, name in FIELDS if start <= offset < end),
                "the folder entries")  # fmt: skip


def _same_body(fa: BinaryIO, fb: BinaryIO, at: tuple[int, int], length: int) -> None:
    """Released bytes from `at[0]` equal rebuilt bytes from `at[1]`, `length` of them.

    Raises:
        VerificationError: they differ; names the first differing released offset.
    """
    done = 0
    fa.seek(at[0])
    fb.seek(at[1])
    while done < length:
        a, b = fa.read(min(CHUNK, length - done)), fb.read(min(CHUNK, length - done))
        if not a or len(a) != len(b):
            raise VerificationError("a cabinet is truncated")
        if a != b:
            first = next(i for i in range(len(a)) if a[i] != b[i])
            raise VerificationError(
                f"released byte {at[0] + done + first} differs from the rebuild's signed layout "
                "(the file entries or data blocks)"
            )
        done += len(a)


def _pkcs7(blob: bytes, base: int) -> bytes:
    """The one DER PKCS#7 at the start of the signature area; the rest may only be padding.

    Raises:
        VerificationError: not DER, or anything but fewer than 8 zero bytes follows it.
    """
    tlv = der.read_tlv(blob, 0, len(blob), "CAB signature")
    pad = blob[tlv.end :]
    if len(pad) >= PAD or pad.strip(b"\0"):
        raise VerificationError(
            f"{len(pad)} bytes after the PKCS#7 at offset {base + tlv.end} are not the signer's "
            f"zero padding (fewer than {PAD} zero bytes)"
        )
    return tlv.raw


def _before_signing(fa: BinaryIO, sig_at: int) -> tuple[BinaryIO, Unsigned]:
    """The released cabinet's header and folder entries as they were before signing (the
    reserve taken out, its flag cleared, cbCabinet, coffFiles and every folder's offset moved
    24 bytes back), and that cabinet's layout (`sig_at - 24` bytes long).

    Raises:
        VerificationError: the released cabinet has no reserve, or is not a cabinet that
            signing an unsigned one gives (a set, a declared size that is not the signature's
            offset, file entries that do not follow its folders).
    """
    what = "the released cabinet"
    head = bytearray(_read(fa, 0, HEADER, what))
    (folders,), (flags,) = struct.unpack_from("<H", head, 26), struct.unpack_from("<H", head, 30)
    if not flags & RESERVE_FLAG or sig_at < SHIFT:
        raise VerificationError(f"{what} has no signature reserve")
    entries = bytearray(_read(fa, SIGNED_HEADER, 8 * folders, what))
    for at, table in [(8, head), (16, head)] + [(8 * i, entries) for i in range(folders)]:
        (value,) = struct.unpack_from("<I", table, at)
        struct.pack_into("<I", table, at, (value - SHIFT) % (1 << 32))
    struct.pack_into("<H", head, 30, flags & ~RESERVE_FLAG)
    view = io.BytesIO(bytes(head + entries))
    return view, unsigned_layout(view, sig_at - SHIFT, f"{what} before signing")


def prove_cab_signature_only(
    files: tuple[Path, Path],
    listings: tuple[Listing, Listing],
    trusted: tuple[Path, ...],
    accepted: frozenset[str] = frozenset(),
) -> tuple[SignerDetails, ...]:
    """Prove released = rebuilt + a cabinet Authenticode signature; return the signers.

    `files` are (released, rebuilt); the proof reads their bytes, not `listings`. With
    `accepted` (files whose content differs, each accepted on its own: a DLL signed before it
    was packed), the released cabinet before signing is not the rebuild: the driver has
    compared it with the rebuild (every field, member, block and byte), and the proof holds
    it to what osslsigncode writes into THAT cabinet (the reserve, the offsets) and the
    signature to its own hash (from the released bytes).

    Raises:
        VerificationError: any part of the proof fails; the message says which.
        InputError: a pinned certificate cannot be read.
    """
    del listings  # the proof is over bytes: every byte of both files is compared or signed
    anchors = load_trusted(trusted)
    with files[0].open("rb") as fa, files[1].open("rb") as fb:
        rel_size, reb_size = fa.seek(0, 2), fb.seek(0, 2)
        layout = unsigned_layout(fb, reb_size)
        reserve = _read(fa, 36, 16, "the released cabinet")
        sig_at, sig_len = struct.unpack_from("<II", reserve, 8)
        source: BinaryIO = fb  # what was signed: its header, and the bytes after it
        body: BinaryIO = fb
        if accepted:
            source, layout = _before_signing(fa, sig_at)
            body = fa
        elif sig_at != reb_size + SHIFT:
            raise VerificationError(
                f"the signature offset {sig_at} is not the end of the rebuild as signed "
                f"({reb_size + SHIFT}): the signature would overlap or leave bytes unaccounted"
            )
        if sig_at + sig_len != rel_size:
            raise VerificationError(
                f"the signature ({sig_len} bytes at {sig_at}) does not end at the end of the "
                f"released file ({rel_size} bytes)"
            )
        if not 0 < sig_len <= MAX_SIGNATURE:
            raise VerificationError(f"a signature of {sig_len} bytes is refused")
        head = signed_head(source, layout, sig_len)
        released_head = _read(fa, 0, len(head), "the released cabinet")
        if released_head != head:
            at = next(i for i in range(len(head)) if released_head[i] != head[i])
            signed = "its own header" if accepted else "the rebuild's"
            raise VerificationError(
                f"the released header differs from {signed} as signed at offset {at} "
                f"({_field(at)}): signing changes no such byte"
            )
        if not accepted:
            _same_body(fa, fb, (len(head), layout.coff_files), reb_size - layout.coff_files)
        blob = _pkcs7(_read(fa, sig_at, sig_len, "the released cabinet"), sig_at)
        cache: dict[str, bytes] = {}
        start = layout.coff_files + (SHIFT if accepted else 0)  # the file entries in `body`

        def expected(algorithm: str) -> bytes:
            if algorithm not in cache:
                blocks = _stream(body, start, start + layout.size - layout.coff_files)
                cache[algorithm] = cab_hash(head, blocks, algorithm)
            return cache[algorithm]

        signers = verify_authenticode(blob, expected, trusted=anchors, label="CAB signature",
                                      base=sig_at, content=SPC_CAB_DATA)  # fmt: skip
    return tuple(signers)
