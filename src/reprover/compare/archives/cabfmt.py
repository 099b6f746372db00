"""Microsoft cabinets (CAB, and the cabinets embedded in MSI installers).

Owns: reading a cabinet into a `Listing`: the header, folders and file entries as fields
(`cab.file[N].mtime` from the DOS date and time, attributes, folder offsets), each folder's
data blocks decompressed once (stored or MSZIP; LZX and Quantum are `archive.unsupported`)
into a private temporary file that members are read from, a digest of the compressed blocks
per folder (`cab.compression.dataN`) and of the blocks' reserved bytes
(`cab.folderN.blocks.reserve`), the Authenticode signature area of a signed cabinet
as a field of its own (`cab.signature`), and as `Hidden` every byte range that no header,
folder, file entry, data block or signature covers, or that two of them claim, reserved
header fields that are not zero, and data block checksums that are neither 0 nor the block's.
Does not own: comparing (`driver`), proving a cabinet's signature (`cabsig`).

Own walker rather than `cabarchive`: that library reads the whole file into memory and keeps
no byte offsets, and accounting for every byte needs both.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
import zlib
from contextlib import ExitStack
from datetime import datetime
from typing import BinaryIO

from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    byte_range,
    decode_name,
    read_exact,
)
from reprover.model import Kind

MAGIC = b"MSCF"
RESERVE, PREV, NEXT = 4, 1, 2
WINDOW = 32768


def _cstring(f: BinaryIO, offset: int) -> bytes:
    f.seek(offset)
    raw = f.read(1024)
    end = raw.find(b"\0")
    if end < 0:
        raise MalformedArchive("cabinet string without its terminator")
    return raw[:end]


def _dostime(date: int, time: int) -> str:
    try:
        return datetime(  # DOS times have no zone
            1980 + (date >> 9), (date >> 5) & 15, date & 31, time >> 11, (time >> 5) & 63,
            (time & 31) * 2,
        ).isoformat()  # fmt: skip
    except ValueError:
        return f"{date:#06x} {time:#06x} (invalid DOS time)"


def read_cab(f: BinaryIO, size: int, budget: Budget, stack: ExitStack) -> Listing:  # noqa: PLR0912, PLR0915 - one walk
    """Read the cabinet in `f` (`size` bytes); folder data goes to files `stack` closes.

    Raises:
        MalformedArchive: a structure is malformed or a checksum-free block does not inflate.
        LimitHit: a bound of `budget` was reached, or a folder uses LZX or Quantum.
    """
    listing = Listing("cab", "cab.file")
    spans: list[tuple[int, int, str]] = []
    head = read_exact(f, 0, 36, "cabinet")
    (_, r1, cb_cabinet, r2, coff_files, r3, minor, major, n_folders, n_files, flags, set_id,
     index) = struct.unpack("<4sIIIIIBBHHHHH", head)  # fmt: skip
    _reserved(listing, (r1, r2, r3))
    pos = 36
    cb_header = cb_folder = cb_data = 0
    if flags & RESERVE:
        cb_header, cb_folder, cb_data = struct.unpack("<HBB", read_exact(f, 36, 4, "cabinet"))
        pos = 40
    reserve = read_exact(f, pos, cb_header, "cabinet")
    fields = listing.fields
    fields["cab.header.version"] = Field((major, minor), 24, 2)
    fields["cab.header.flags"] = Field(flags, 30, 2)
    fields["cab.header.setid"] = Field(set_id, 32, 2)
    fields["cab.header.index"] = Field(index, 34, 2)
    fields["cab.header.size"] = Field(cb_cabinet, 8, 4)
    signature = None
    if cb_header == 20 and reserve[:4] == b"\0\0\x10\0":
        sig_at, sig_len = struct.unpack_from("<II", reserve, 4)
        fields["cab.signature.reserve"] = Field(reserve, pos, cb_header, Kind.SIGNATURE)
        signature = (sig_at, sig_len)
    elif cb_header:
        fields["cab.header.reserve"] = Field(reserve, pos, cb_header)
    pos += cb_header
    for flag, key in ((PREV, "previous"), (NEXT, "next")):
        if flags & flag:
            for part in ("cabinet", "disk"):
                raw = _cstring(f, pos)
                fields[f"cab.header.{key}.{part}"] = Field(raw, pos, len(raw) + 1)
                pos += len(raw) + 1
    spans.append((0, pos, "the header"))
    folders = []
    for i in range(n_folders):
        start, n_data, kind = struct.unpack("<IHH", read_exact(f, pos, 8, "cabinet"))
        fields[f"cab.compression.type{i}"] = Field(kind, pos + 6, 2)
        if cb_folder:
            fields[f"cab.folder{i}.reserve"] = Field(
                read_exact(f, pos + 8, cb_folder, "cabinet"), pos + 8, cb_folder
            )
        spans.append((pos, pos + 8 + cb_folder, f"folder {i}"))
        folders.append((start, n_data, kind))
        pos += 8 + cb_folder
    data_files = [_folder(f, i, folder, cb_data, budget, stack, spans, listing)
                  for i, folder in enumerate(folders)]  # fmt: skip
    listing.inner = _inner(data_files)
    pos = coff_files
    tiles: dict[int, list[tuple[int, int, str]]] = {}  # folder -> its files' data spans
    for _ in range(n_files):
        cb_file, offset, folder, date, time, attribs = struct.unpack(
            "<IIHHHH", read_exact(f, pos, 16, "cabinet")
        )
        raw_name = _cstring(f, pos + 16)
        budget.member(raw_name)
        name = decode_name(raw_name, utf8=bool(attribs & 0x80) or raw_name.isascii())
        entry = {
            "mtime": Field((date, time), pos + 10, 4, Kind.TIMESTAMP, _dostime(date, time)),
            "attributes": Field(attribs, pos + 14, 2),
            "offset": Field((folder, offset), pos + 4, 6),
        }
        spans.append((pos, pos + 17 + len(raw_name), f"file entry {name!r}"))
        pos += 17 + len(raw_name)
        if folder >= len(data_files):
            raise LimitHit("archive.unsupported", f"{name!r} continues in another cabinet")
        data, length = data_files[folder]
        if offset + cb_file > length:
            raise MalformedArchive(f"{name!r} lies outside its folder's data")
        tiles.setdefault(folder, []).append((offset, offset + cb_file, name))
        listing.add(
            Member(name, "file", entry, pos, opener=byte_range(data, offset, cb_file, "cab file"))
        )
    if signature is not None:
        sig_at, sig_len = signature
        spans.append((sig_at, sig_at + sig_len, "the signature"))
        digest = hashlib.sha256(read_exact(f, sig_at, sig_len, "cabinet")).hexdigest()
        fields["cab.signature"] = Field(digest, sig_at, sig_len, Kind.SIGNATURE)
    _account(spans, size, cb_cabinet, listing)
    if cb_cabinet != (size if signature is None else signature[0]):
        # the cabinet's size as the header states it: any other value is four chosen bytes
        listing.hidden.append(Hidden(8, 4, f"cbCabinet {cb_cabinet} is not the cabinet's size"))
    for i, (start, _, _) in enumerate(folders):
        _tiled(tiles.get(i, []), data_files[i][1], f"folder {i}", start, listing)
    return listing


def _tiled(
    files: list[tuple[int, int, str]], length: int, folder: str, at: int, listing: Listing
) -> None:
    """A folder's data is its files' content back to back: a byte of it no file claims, or
    that two claim, is hidden (data no extractor writes; `at` is the folder's first block)."""
    pos, last = 0, "its start"
    for start, end, name in sorted(files):
        if start < pos:
            listing.hidden.append(Hidden(at, pos - start, f"{name!r} overlaps {last} in the "
                                         f"data of {folder}"))  # fmt: skip
        elif start > pos:
            listing.hidden.append(Hidden(at, start - pos, f"{start - pos} byte(s) of the data "
                                         f"of {folder} between {last} and {name!r} are in no "
                                         "file"))  # fmt: skip
        if end > pos:
            pos, last = end, repr(name)
    if pos < length:
        listing.hidden.append(Hidden(at, length - pos, f"{length - pos} byte(s) of the data of "
                                     f"{folder} after {last} are in no file"))  # fmt: skip


def _reserved(listing: Listing, values: tuple[int, int, int]) -> None:
    """reserved1..3 (offsets 4, 12, 20) must be zero: otherwise a channel no field shows."""
    for at, value in zip((4, 12, 20), values, strict=True):
        if value:
            listing.hidden.append(Hidden(at, 4, f"reserved header field at {at} is not zero"))


def _inner(data_files: list[tuple[BinaryIO, int]]) -> str:
    """A digest of every folder's decompressed data: equal, the compressed bytes are the
    only difference (`archive.compression`); otherwise they follow a content change, which
    must be a member's (bytes in a folder outside every file are never allowed)."""
    inner = hashlib.sha256()
    for data, length in data_files:
        inner.update(length.to_bytes(8, "little"))
        data.seek(0)
        while block := data.read(CHUNK):
            inner.update(block)
    return inner.hexdigest()


def _folder(  # noqa: PLR0917 - the walk's state, passed once
    f: BinaryIO, index: int, folder: tuple[int, int, int], cb_data: int, budget: Budget,
    stack: ExitStack, spans: list[tuple[int, int, str]], listing: Listing,
) -> tuple[BinaryIO, int]:  # fmt: skip
    """Decompress one folder's data blocks into a temporary file; return it and its length.

    A block's checksum must be 0 (none) or the block's own: any other value is hidden data
    that `archive.compression` would otherwise let through with the compressed bytes. The
    blocks' reserved bytes (cbCFData) are a field of their own, which no rule allows.
    """
    start, n_data, kind = folder
    method = kind & 0x0F
    if method not in (0, 1):
        raise LimitHit("archive.unsupported", f"cabinet folder {index} uses compression {method}")
    out: BinaryIO = stack.enter_context(tempfile.TemporaryFile(prefix="reprover-cab-"))  # noqa: SIM115
    raw, reserved = hashlib.sha256(), hashlib.sha256()
    window, pos, total = b"", start, 0
    for block in range(n_data):
        head = read_exact(f, pos, 8 + cb_data, "cabinet")
        csum, cb, cb_uncomp = struct.unpack_from("<IHH", head)
        data = read_exact(f, pos + 8 + cb_data, cb, "cabinet")
        raw.update(head + data)
        reserved.update(head[8:])
        if csum and csum != checksum(head[4:8], checksum(data, 0)):
            listing.hidden.append(Hidden(pos, 4, f"data block {block} of folder {index}: "
                                         "a checksum that is not the block's"))  # fmt: skip
        spans.append((pos, pos + 8 + cb_data + cb, f"data block {block} of folder {index}"))
        pos += 8 + cb_data + cb
        if method == 0:
            plain = data
        else:
            if data[:2] != b"CK":
                raise MalformedArchive(f"folder {index} block {block}: no MSZIP signature")
            engine = zlib.decompressobj(-15, zdict=window) if window else zlib.decompressobj(-15)
            try:
                plain = engine.decompress(data[2:], WINDOW + 1)
            except zlib.error as exc:
                raise MalformedArchive(f"folder {index} block {block}: {exc}") from exc
            if not engine.eof or engine.unused_data or engine.unconsumed_tail:
                raise MalformedArchive(f"folder {index} block {block}: data after its stream")
            window = (window + plain)[-WINDOW:]
        if len(plain) != cb_uncomp:
            raise MalformedArchive(f"folder {index} block {block}: size does not match")
        budget.spend(len(plain))
        out.write(plain)
        total += len(plain)
    listing.fields[f"cab.compression.data{index}"] = Field(raw.hexdigest(), start, pos - start)
    if cb_data:
        listing.fields[f"cab.folder{index}.blocks.reserve"] = Field(
            reserved.hexdigest(), start, pos - start
        )
    out.flush()
    return out, total


def checksum(data: bytes, seed: int) -> int:
    """The cabinet checksum (MS-CAB; libmspack `cabd_checksum`): the XOR of `data`'s
    little-endian 32-bit words and of its 0-3 last bytes read big-endian, with `seed`.

    The XOR of all words is taken by folding one big integer in halves (in C, not per word).
    """
    words = len(data) // 4
    x, bits = int.from_bytes(data[: 4 * words], "little"), 32 * words
    while bits > 32:
        half = bits // 64 * 32
        x = (x & ((1 << half) - 1)) ^ (x >> half)
        bits -= half
    return seed ^ x ^ int.from_bytes(data[4 * words :], "big")


def _account(
    spans: list[tuple[int, int, str]], size: int, cb_cabinet: int, listing: Listing
) -> None:
    """Every byte claimed by exactly one structure; the rest is hidden."""
    pos, last = 0, "the start"
    for start, end, what in sorted(spans):
        if start < pos:
            listing.hidden.append(Hidden(start, pos - start, f"{what} overlaps {last}"))
        elif start > pos:
            listing.hidden.append(Hidden(pos, start - pos, f"bytes between {last} and {what}"))
        if end > pos:
            pos, last = end, what
    if pos < size:
        listing.hidden.append(Hidden(pos, size - pos, "bytes after the cabinet"))
    if cb_cabinet > size:
        raise MalformedArchive("cabinet header claims more bytes than the file holds")
