"""gcab's cabinet data blocks, reproduced: is a CAB folder exactly what gcab writes of its content?

Owns: `gcab_encoding`, the encoding check of one folder's data blocks (`cab.compression.dataN`)
when the content differs from the rebuild's. gcab (libgcab 1.x, which wixl links to write an
MSI's embedded `product.cab`; `libgcab/gcab-cabinet.c` and `cabinet.c::cdata_write`) cuts a
folder's content into blocks of 32768 bytes (the last one shorter; none for no content) and
writes each alone: stored (folder type 0) as it is, or MSZIP (type 1) as `CK` and a raw deflate
stream of that block only, made in one `deflate(Z_FINISH)` call by zlib's `deflateInit2(level
Z_DEFAULT_COMPRESSION (6), 15-bit window, memory level 8, default strategy)`, with no
dictionary, made again at level 0 when level 6 gives 32780 bytes or more; each block's header
is its checksum (MS-CAB, over the data and both sizes), compressed and uncompressed size, and
no reserve. Those blocks are a function of the content: a block that is byte for byte what
that encoder makes of its own content carries nothing else, so compressed bytes that differ
because content does are then a consequence. The rebuilt folder must be reproduced first (it
shows the rebuild used gcab), then the released one; each side is read block by block (at
most 64 KiB at a time), and the check stops at the first difference. Measured with wixl 0.101
and gcab 1.5 (zlib 1.2.13): every block reproduced, checksum included.
Not reproduced: Microsoft's own MSZIP (makecab, WiX on Windows, Windows Installer), which
carries the window from block to block and chooses other matches: such a rebuild is not
reproduced, so the released folder cannot be checked and only `archive.compression` allows it.
Does not own: reading cabinets (`cabfmt`), when a check is needed (`driver`, `verdict`), the
other formats' encoders (`recompress`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reprover.compare.archives.cabfmt import RESERVE, checksum
from reprover.compare.archives.listing import Field, read_exact

BLOCK = 32768  # gcab's CAB_MAX_BLOCK_SIZE: content per data block
STORE_FROM = 32768 + 12  # CAB_MAX_MSZIP_BLOCK_SIZE: level 6 this long or longer is redone at 0
LABEL = "gcab's MSZIP encoder (wixl's product.cab: zlib level 6 per 32 KiB block)"
STORED_LABEL = "gcab's stored blocks (32 KiB each)"


class NotGcabError(Exception):
    """The folder's blocks are not what gcab makes of their content (why, as its message)."""


def gcab_block(plain: bytes, method: int) -> bytes:
    """The data block (header and data) gcab writes for `plain` (1 to 32768 bytes) in a
    folder of `method` (0 stored, 1 MSZIP)."""
    data = plain if method == 0 else _mszip(plain)
    if method and len(data) >= STORE_FROM:
        data = _stored(plain)
    sizes = struct.pack("<HH", len(data), len(plain))
    return struct.pack("<I", checksum(sizes, checksum(data, 0))) + sizes + data


def _mszip(plain: bytes) -> bytes:
    """`CK` and zlib's level 6 raw deflate stream of `plain` (the bytes of one Z_FINISH call:
    level 6 chooses blocks by its buffers, not by how the input arrives)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
    return b"CK" + deflate.compress(plain) + deflate.flush()


def _stored(plain: bytes) -> bytes:
    """`CK` and what zlib's level 0 makes of `plain` in one Z_FINISH call with room for it all,
    as gcab calls it: one final stored block. Written out, because Python's zlib feeds level 0
    in pieces (`compress` then `flush`, or `zlib.compress`'s 32 KiB first output buffer), and
    zlib's stored blocks follow those pieces."""
    return b"CK\x01" + struct.pack("<HH", len(plain), len(plain) ^ 0xFFFF) + plain


def _folder_method(f: BinaryIO, index: int) -> tuple[int, int]:
    """The compression method of folder `index` (0 stored, 1 MSZIP, else other) and the
    data blocks' reserve size, read from the cabinet header.

    Raises:
        MalformedArchive: the header is truncated.
    """
    flags = struct.unpack("<H", read_exact(f, 30, 2, "cabinet"))[0]
    pos, cb_folder, cb_data = 36, 0, 0
    if flags & RESERVE:
        cb_header, cb_folder, cb_data = struct.unpack("<HBB", read_exact(f, 36, 4, "cabinet"))
        pos = 40 + cb_header
    if flags & 3:  # previous or next cabinet names: gcab writes none
        raise NotGcabError("the cabinet belongs to a set (gcab writes single cabinets)")
    kind = struct.unpack("<H", read_exact(f, pos + index * (8 + cb_folder) + 6, 2, "cabinet"))[0]
    return kind, cb_data


def _blocks(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """Each data block of a folder with no block reserve, as (header, data), from `start`
    to exactly `end`.

    Raises:
        NotGcabError: a block runs past `end`.
        MalformedArchive: the file is truncated.
    """
    pos = start
    while pos < end:
        head = read_exact(f, pos, 8, "cabinet data block")
        size = struct.unpack_from("<H", head, 4)[0]
        if pos + 8 + size > end:
            raise NotGcabError("a data block runs past its folder's data")
        yield head, read_exact(f, pos + 8, size, "cabinet data block")
        pos += 8 + size


def _check_folder(path: Path, index: int, span: Field) -> str:
    """Whether folder `index` of the cabinet at `path`, whose blocks `span` covers, is
    gcab's; return the encoder's label.

    Raises:
        NotGcabError: it is not (the message says why).
        MalformedArchive: the file is truncated.
    """
    with path.open("rb") as f:
        kind, cb_data = _folder_method(f, index)
        method = kind & 0x0F
        if kind not in (0, 1):
            raise NotGcabError(f"compression type {kind:#x} (gcab writes stored or MSZIP)")
        if cb_data:
            raise NotGcabError("its data blocks have a reserve (gcab writes none)")
        last = BLOCK
        for n, (head, data) in enumerate(_blocks(f, span.offset, span.offset + span.length)):
            if last != BLOCK:
                raise NotGcabError(f"block {n - 1} holds {last} bytes but is not the last")
            plain = data if method == 0 else _inflate_alone(data, n)
            last = len(plain)
            if not plain or last > BLOCK:
                raise NotGcabError(f"block {n} holds {last} bytes (gcab: 1 to {BLOCK})")
            if head + data != gcab_block(plain, method):
                raise NotGcabError(f"block {n} is not what gcab writes for its content")
    return STORED_LABEL if method == 0 else LABEL


def _inflate_alone(data: bytes, n: int) -> bytes:
    """A gcab MSZIP block's content: `CK` and one raw deflate stream that needs no earlier
    block (gcab sets no dictionary).

    Raises:
        NotGcabError: the block is not that.
    """
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        plain = inflate.decompress(data[2:], BLOCK + 1) if data[:2] == b"CK" else None
    except zlib.error:
        plain = None
    if plain is None or not inflate.eof or inflate.unused_data or inflate.unconsumed_tail:
        raise NotGcabError(f"block {n} is not one MSZIP stream of its own")
    return plain


def gcab_encoding(
    files: tuple[Path, Path], index: int, spans: tuple[Field, Field]
) -> tuple[bool, str]:
    """Check folder `index` of the released cabinet (`files[0]`, blocks at `spans[0]`)
    against gcab, once the rebuilt one (`files[1]`, `spans[1]`) shows gcab made it.

    Returns (canonical, detail), as `recompress.Encoding` takes them.

    Raises:
        MalformedArchive: a cabinet is truncated.
    """
    try:
        label = _check_folder(files[1], index, spans[1])
    except NotGcabError as exc:
        return False, (
            f"the rebuilt cabinet's folder {index} is not what gcab makes of its content "
            f"({exc}); other encoders (Microsoft's MSZIP: makecab, WiX on Windows) are not "
            "reproduced, so the released blocks' encoding choices (which could carry data) "
            "cannot be checked"
        )
    try:
        _check_folder(files[0], index, spans[0])
    except NotGcabError as exc:
        return False, (
            f"the released cabinet's folder {index} is not what {label} (which makes the "
            f"rebuilt folder) makes of its content: {exc}; its encoding choices could carry data"
        )
    return True, f"{label} makes both folders' blocks from their content"
