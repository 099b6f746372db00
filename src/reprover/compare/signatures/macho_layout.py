"""Mach-O layout for signatures: the fat header and slices, and each slice's load commands.

Owns: recognising Mach-O files, reading a universal file's slices strictly (in order, no
overlap, aligned, only zero bytes between them, the last ending the file) and finding a thin
slice's `LC_CODE_SIGNATURE` and `__LINKEDIT` with every bound checked.
Does not own: the code signature itself (`macho_blobs`) or the proof (`macho`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from reprover.errors import VerificationError

MH_MAGIC_64 = 0xFEEDFACF
MH_MAGIC = 0xFEEDFACE
FAT_MAGIC = b"\xca\xfe\xba\xbe"
FAT_MAGICS = (FAT_MAGIC, b"\xbe\xba\xfe\xca", b"\xca\xfe\xba\xbf", b"\xbf\xba\xfe\xca")
LC_CODE_SIGNATURE = 0x1D
LC_SEGMENT_64 = 0x19
MAX_SLICES = 16


@dataclass(frozen=True)
class SliceLayout:
    """Where a thin slice's signature-related fields lie (offsets within the slice).

    `dataoff` is -1 when the slice has no `LC_CODE_SIGNATURE`.
    """

    cs_command: int
    dataoff: int
    datasize: int
    linkedit: int
    linkedit_vmsize: int
    linkedit_fileoff: int
    linkedit_filesize: int


def is_macho(head: bytes) -> bool:
    """Whether the first bytes are a thin or fat Mach-O magic."""
    if len(head) < 4:
        return False
    magic = struct.unpack_from("<I", head)[0]
    return magic in (MH_MAGIC, MH_MAGIC_64) or head[:4] in FAT_MAGICS


def is_fat(data: bytes) -> bool:
    """Whether `data` starts with a fat (universal) magic."""
    return data[:4] in FAT_MAGICS


def first_difference(a: bytes | bytearray, b: bytes | bytearray) -> int:
    """The first offset where `a` and `b` differ (or the shorter length)."""
    step = 1 << 16
    for pos in range(0, min(len(a), len(b)), step):
        if a[pos : pos + step] != b[pos : pos + step]:
            return next(i for i in range(pos, pos + step) if a[i] != b[i])
    return min(len(a), len(b))


def fat_slices(data: bytes, name: str) -> list[tuple[int, int, int, int]]:
    """(cputype, cpusubtype, offset, size) of each slice, checked strictly.

    Raises:
        VerificationError: an unsupported fat variant (64-bit or little-endian headers), or
            slices overlap, are misaligned, leave non-zero bytes between them, lie outside
            the file or do not end it.
    """
    if data[:4] != FAT_MAGIC:
        raise VerificationError(f"{name}: only big-endian 32-bit fat headers are supported")
    count = struct.unpack_from(">I", data, 4)[0]
    if not 1 <= count <= MAX_SLICES or 8 + 20 * count > len(data):
        raise VerificationError(f"{name}: not a universal Mach-O ({count} slices)")
    out: list[tuple[int, int, int, int]] = []
    cursor = 8 + 20 * count
    for i in range(count):
        cpu, sub, offset, size, align = struct.unpack_from(">IIIII", data, 8 + 20 * i)
        if align > 15 or offset % (1 << align):
            raise VerificationError(f"{name}: slice {i} at {offset:#x} is not aligned to 2^{align}")
        if offset < cursor:
            raise VerificationError(
                f"{name}: slice {i} at {offset:#x} overlaps the fat header or the previous slice "
                f"(which ends at {cursor:#x})"
            )
        if offset + size > len(data) or size < 28:
            raise VerificationError(f"{name}: slice {i} ({offset:#x}+{size:#x}) is out of bounds")
        if any(data[cursor:offset]):
            raise VerificationError(
                f"{name}: non-zero bytes between {cursor:#x} and slice {i} at {offset:#x}"
            )
        out.append((int(cpu), int(sub), int(offset), int(size)))
        cursor = offset + size
    if cursor != len(data):
        raise VerificationError(
            f"{name}: {len(data) - cursor} bytes follow the last slice; bytes outside every "
            "slice are covered by no signature"
        )
    return out


def slice_layout(data: bytes, name: str) -> SliceLayout:
    """Find `LC_CODE_SIGNATURE` and `__LINKEDIT` in a thin little-endian 64-bit Mach-O.

    Raises:
        VerificationError: not a thin little-endian 64-bit Mach-O, or a load command is out
            of bounds, repeated or malformed.
    """
    if len(data) < 32 or struct.unpack_from("<I", data)[0] != MH_MAGIC_64:
        raise VerificationError(f"{name}: not a thin little-endian 64-bit Mach-O file")
    ncmds, sizeofcmds = struct.unpack_from("<II", data, 16)
    pos, end = 32, 32 + sizeofcmds
    if end > len(data):
        raise VerificationError(f"{name}: load commands run past the end of the file")
    cs = link = -1
    dataoff = datasize = 0
    for _ in range(ncmds):
        if pos + 8 > end:
            raise VerificationError(f"{name}: load command at {pos:#x} is truncated")
        cmd, size = struct.unpack_from("<II", data, pos)
        if size < 8 or pos + size > end:
            raise VerificationError(f"{name}: load command at {pos:#x} has a bad size {size}")
        if cmd == LC_CODE_SIGNATURE:
            if cs >= 0 or size != 16:
                raise VerificationError(f"{name}: malformed or repeated LC_CODE_SIGNATURE")
            cs = pos
            dataoff, datasize = struct.unpack_from("<II", data, pos + 8)
        elif (
            cmd == LC_SEGMENT_64
            and size >= 72
            and data[pos + 8 : pos + 24] == b"__LINKEDIT\0\0\0\0\0\0"
        ):
            if link >= 0:
                raise VerificationError(f"{name}: two __LINKEDIT segments")
            link = pos
        pos += size
    if cs < 0:
        return SliceLayout(-1, -1, 0, link, 0, 0, 0)
    if link < 0:
        raise VerificationError(f"{name}: signed, but no __LINKEDIT segment")
    vmsize, fileoff, filesize = struct.unpack_from("<QQQ", data, link + 32)
    return SliceLayout(
        cs, int(dataoff), int(datasize), link, int(vmsize), int(fileoff), int(filesize)
    )


def find_code_signature(data: bytes, name: str) -> tuple[int, int] | None:
    """(dataoff, datasize) of a thin file's `LC_CODE_SIGNATURE`, or None when it has none.

    Raises:
        VerificationError: not a thin 64-bit Mach-O, or a load command is malformed.
    """
    layout = slice_layout(data, name)
    return None if layout.dataoff < 0 else (layout.dataoff, layout.datasize)
