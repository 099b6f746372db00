"""ZIP family (zip, wheel, jar, apk, nupkg): a strict walk of every byte of the file.

Owns: reading a ZIP into a `Listing`: the end record (ZIP64 too), every central-directory
entry, and every local header walked in file order, so that bytes before, between and after
members, local headers that disagree with the central directory, duplicate names, overlapping
entries, bytes after the end record and data after a member's compressed stream are all
reported as `Hidden`; member content streamed (stored, deflate, bzip2, zstd) with its CRC and
size checked.
Does not own: comparing two listings (`driver`), deciding what is allowed (`reprover.policy`).

Why not stdlib `zipfile`: it trusts the central directory and never reads the bytes it does not
reference, tolerates data prepended to the archive, and reads local headers only for their
lengths, so it cannot account for every byte; this walk is written for that strictness. It
reads headers with bounds checks and streams member data in 1 MiB blocks.
"""

from __future__ import annotations

import bz2
import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Union

from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Opener,
    byte_range,
    decode_name,
)
from reprover.model import Kind

EOCD, EOCD64, LOC64 = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
CEN, LOC, DESCRIPTOR = b"PK\x01\x02", b"PK\x03\x04", b"PK\x07\x08"
MAX_COMMENT = 0xFFFF
COMPRESSION_FLAGS = 0x000E  # deflate options (bits 1-2) and the data descriptor (bit 3)
UNIX = 3
S_IFMT, S_IFLNK, S_IFDIR = 0o170000, 0o120000, 0o040000
EXTRA_NAMES = {0x5455: "extra.mtime", 0x000A: "extra.ntfs.mtime", 0x7875: "extra.owner"}


@dataclass
class _Entry:
    name: str
    raw_name: bytes
    at: int  # offset of its central-directory record
    made_by: int
    needed: int
    flags: int
    method: int
    dostime: int
    crc: int
    csize: int
    usize: int
    local: int
    internal: int
    external: int
    extra: bytes
    comment: bytes
    zip64: bool


def _read(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise MalformedArchive(f"truncated: wanted {size} bytes at {offset}")
    return data


def _records(extra: bytes) -> list[tuple[int, int, bytes]] | None:
    """(id, offset in extra, data) of each extra record, or None when they do not parse."""
    out, pos = [], 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            return None
        ident, size = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + size > len(extra):
            return None
        out.append((ident, pos, extra[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return out


def _zip64(entry: _Entry, data: bytes) -> None:
    """Apply a ZIP64 extended-information record to the entry's 0xFFFFFFFF fields."""
    pos = 0
    for attr in ("usize", "csize", "local"):
        if getattr(entry, attr) == 0xFFFFFFFF:
            if pos + 8 > len(data):
                raise MalformedArchive(f"ZIP64 record of {entry.name!r} is too short")
            setattr(entry, attr, struct.unpack_from("<Q", data, pos)[0])
            pos += 8
    entry.zip64 = True


def _end(f: BinaryIO, size: int, listing: Listing) -> tuple[int, int, int, int, int]:
    """Find the end record; return (cd start, cd size, entry count, where the cd must end,
    bytes prepended to the archive)."""
    span = min(size, 22 + MAX_COMMENT)
    tail = _read(f, size - span, span)
    pos = tail.rfind(EOCD)
    while pos >= 0 and (
        pos + 22 > span or pos + 22 + struct.unpack_from("<H", tail, pos + 20)[0] > span
    ):
        pos = tail.rfind(EOCD, 0, pos)
    if pos < 0:
        raise MalformedArchive("no end-of-central-directory record")
    at = size - span + pos
    disk, cd_disk, n_disk, n_total, cd_size, cd_offset, clen = struct.unpack_from(
        "<HHHHIIH", tail, pos + 4
    )
    comment_at = at + 22
    comment = tail[pos + 22 : pos + 22 + clen]
    listing.fields["zip.comment"] = Field(comment, comment_at, clen, Kind.HIDDEN)
    if comment_at + clen < size:
        listing.hidden.append(
            Hidden(comment_at + clen, size - comment_at - clen, "bytes after the end record")
        )
    cd_end = at
    if at >= 20 and _read(f, at - 20, 4) == LOC64:
        _, _loc_disk, rec_at, _disks = struct.unpack("<IIQI", _read(f, at - 20, 20))
        record = _read(f, rec_at, 56)
        if record[:4] != EOCD64:
            raise MalformedArchive("ZIP64 locator does not point at a ZIP64 end record")
        rec_size, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = struct.unpack_from(
            "<QHHIIQQQQ", record, 4
        )
        if rec_at + 12 + rec_size != at - 20:
            listing.hidden.append(
                Hidden(rec_at, at - 20 - rec_at, "ZIP64 end record does not reach its locator")
            )
        cd_end = rec_at
    if disk or cd_disk or n_disk != n_total:
        raise MalformedArchive("multi-disk archives are not supported")
    if cd_size > cd_end:
        raise MalformedArchive("central directory larger than the file")
    shift = cd_end - cd_size - cd_offset
    if shift < 0:
        raise MalformedArchive("central directory offset points past its end")
    if shift:
        listing.hidden.append(
            Hidden(0, shift, f"{shift} bytes prepended to the archive (offsets shifted)")
        )
    return cd_offset + shift, cd_size, n_total, cd_end, shift


def _central(
    f: BinaryIO, span: tuple[int, int, int], listing: Listing, budget: Budget
) -> list[_Entry]:
    start, cd_size, count = span
    data = _read(f, start, cd_size)
    entries: list[_Entry] = []
    pos = 0
    for _ in range(count):
        if data[pos : pos + 4] != CEN or pos + 46 > len(data):
            raise MalformedArchive(f"central directory entry {len(entries)} is malformed")
        fixed = struct.unpack_from("<HHHHHHIIIHHHHHII", data, pos + 4)
        (made_by, needed, flags, method, t, d, crc, csize, usize, nlen, xlen, clen, _disk,
         internal, external, local) = fixed  # fmt: skip
        end = pos + 46 + nlen + xlen + clen
        if end > len(data):
            raise MalformedArchive(f"central directory entry {len(entries)} overruns it")
        raw_name = data[pos + 46 : pos + 46 + nlen]
        budget.member(raw_name)
        entry = _Entry(
            decode_name(raw_name, utf8=bool(flags & 0x800) or raw_name.isascii()), raw_name,
            start + pos, made_by, needed, flags, method, (d << 16) | t, crc, csize, usize, local,
            internal, external, data[pos + 46 + nlen : pos + 46 + nlen + xlen],
            data[pos + 46 + nlen + xlen : end], False,
        )  # fmt: skip
        for ident, _, payload in _records(entry.extra) or ():
            if ident == 1:
                _zip64(entry, payload)
        entries.append(entry)
        pos = end
    if pos != len(data):
        listing.hidden.append(
            Hidden(start + pos, len(data) - pos, "bytes in the central directory after its entries")
        )
    return entries


def _dostime(value: int) -> str:
    d, t = value >> 16, value & 0xFFFF
    try:
        moment = datetime(  # DOS times have no zone
            1980 + (d >> 9), (d >> 5) & 15, d & 31, t >> 11, (t >> 5) & 63, (t & 31) * 2
        )
    except ValueError:
        return f"{value:#010x} (invalid DOS time)"
    return moment.isoformat()


def _fields(e: _Entry, local_extra: bytes, local_extra_at: int) -> dict[str, Field]:
    at = e.at
    fields = {
        "version": Field(e.made_by, at + 4, 2),
        "compression.version": Field(e.needed, at + 6, 2),
        "compression.flags": Field(e.flags & COMPRESSION_FLAGS, at + 8, 2),
        "flags": Field(e.flags & ~COMPRESSION_FLAGS, at + 8, 2),
        "compression.method": Field(e.method, at + 10, 2),
        "mtime": Field(e.dostime, at + 12, 4, Kind.TIMESTAMP, _dostime(e.dostime)),
        "compression.size": Field(e.csize, at + 20, 4),
        "attributes.internal": Field(e.internal, at + 36, 2),
        "comment": Field(e.comment, at + 46 + len(e.raw_name) + len(e.extra), len(e.comment)),
    }
    if e.made_by >> 8 == UNIX:
        mode = e.external >> 16
        fields["mode"] = Field(mode, at + 38, 4, show=f"{mode:o}")
        fields["attributes.dos"] = Field(e.external & 0xFFFF, at + 38, 4)
    else:
        fields["attributes.external"] = Field(e.external, at + 38, 4)
    extra_at = at + 46 + len(e.raw_name)
    for prefix, extra, base in (("", e.extra, extra_at), ("local.", local_extra, local_extra_at)):
        records = _records(extra)
        if records is None:
            fields[prefix + "extra"] = Field(extra, base, len(extra))
            continue
        for ident, pos, payload in records:
            if ident == 1:
                continue  # ZIP64 sizes and offsets: checked by the walk itself
            named = ident in EXTRA_NAMES and _well_formed(ident, payload)
            key = prefix + (EXTRA_NAMES[ident] if named else f"extra[{ident:#06x}]")
            kind = Kind.TIMESTAMP if key.endswith("mtime") else Kind.METADATA
            fields[key] = Field(payload, base + pos, 4 + len(payload), kind)
    return fields


def _well_formed(ident: int, payload: bytes) -> bool:
    """Whether a time or owner extra holds only its fields (else no rule may allow it: a
    payload of data under a time or owner record is data, not a time)."""
    if ident == 0x5455:  # flags, then one 4-byte time per flag bit set (central: at most all)
        return 1 <= len(payload) <= 1 + 4 * bin(payload[0] & 7).count("1")
    if ident == 0x000A:  # 4 reserved bytes, one tag 1 of 24 bytes (mtime, atime, ctime)
        return len(payload) == 32 and payload[4:8] == struct.pack("<HH", 1, 24)
    if ident == 0x7875:  # version 1, uid size, uid, gid size, gid
        if len(payload) < 3 or payload[0] != 1 or payload[1] > 8:
            return False
        gid_at = 2 + payload[1]
        return (
            gid_at < len(payload)
            and payload[gid_at] <= 8
            and (len(payload) == gid_at + 1 + payload[gid_at])
        )
    return False


def _kind(e: _Entry) -> str:
    if e.made_by >> 8 == UNIX:
        fmt = (e.external >> 16) & S_IFMT
        if fmt == S_IFLNK:
            return "symlink"
        if fmt == S_IFDIR:
            return "dir"
        if fmt not in (0, 0o100000):
            return "other"
    return "dir" if e.name.endswith("/") else "file"


def _local(f: BinaryIO, e: _Entry, listing: Listing) -> tuple[int, int, bytes, int]:
    """Check the local header against the central directory; return (data, end, extra, at)."""
    head = _read(f, e.local, 30)
    if head[:4] != LOC:
        raise MalformedArchive(f"no local header for {e.name!r} at {e.local}")
    needed, flags, method, t, d, crc, csize, usize, nlen, xlen = struct.unpack_from(
        "<HHHHHIIIHH", head, 4
    )
    name = _read(f, e.local + 30, nlen)
    extra = _read(f, e.local + 30 + nlen, xlen)
    local64 = any(i == 1 for i, _, _ in _records(extra) or ())
    disagree = [
        what
        for what, a, b in (
            ("name", name, e.raw_name),
            ("version needed", needed, e.needed),
            ("flags", flags, e.flags),
            ("method", method, e.method),
            ("time", (d << 16) | t, e.dostime),
        )
        if a != b
    ]
    if not e.flags & 8:
        record = next((p for i, _, p in _records(extra) or () if i == 1), b"")
        if local64 and (usize, csize) == (0xFFFFFFFF, 0xFFFFFFFF) and len(record) >= 16:
            usize, csize = struct.unpack_from("<QQ", record)  # ZIP64 local sizes: both, in order
        elif local64:
            disagree.append("ZIP64 local sizes")
        for what, a, b in (("crc", crc, e.crc), ("compressed size", csize, e.csize),
                           ("size", usize, e.usize)):  # fmt: skip
            if a != b:
                disagree.append(what)
    if disagree:
        listing.hidden.append(
            Hidden(e.local, 30 + nlen, f"local header of {e.name!r} disagrees with the central "
                   f"directory: {', '.join(disagree)}")
        )  # fmt: skip
    data = e.local + 30 + nlen + xlen
    end = data + e.csize
    if e.flags & 8:
        wide = e.zip64 or local64
        sig = _read(f, end, 4)
        at = end + (4 if sig == DESCRIPTOR else 0)
        fmt = "<IQQ" if wide else "<III"
        got = struct.unpack(fmt, _read(f, at, struct.calcsize(fmt)))
        if got != (e.crc, e.csize, e.usize):
            listing.hidden.append(
                Hidden(end, at - end + struct.calcsize(fmt),
                       f"data descriptor of {e.name!r} disagrees with the central directory")
            )  # fmt: skip
        end = at + struct.calcsize(fmt)
    return data, end, extra, e.local + 30 + nlen


def read_zip(f: BinaryIO, size: int, budget: Budget) -> Listing:
    """Read and account for every byte of a ZIP file of `size` bytes open in `f`.

    Members are listed in central-directory order; their content is streamed on demand.

    Raises:
        MalformedArchive: the structure cannot be followed (no end record, truncated headers).
        LimitHit: a bound of `budget` was reached.
    """
    listing = Listing("zip", "zip.entry")
    start, cd_size, count, cd_end, shift = _end(f, size, listing)
    entries = _central(f, (start, cd_size, count), listing, budget)
    for e in entries:
        e.local += shift
    if start + cd_size != cd_end:
        raise MalformedArchive("central directory does not end at the end record")
    seen: set[bytes] = set()
    for e in entries:
        if e.raw_name in seen:
            listing.hidden.append(Hidden(e.at, 46, f"duplicate name {e.name!r}"))
        seen.add(e.raw_name)
    members: dict[int, Member] = {}
    pos = shift
    for e in sorted(entries, key=lambda x: x.local):
        if e.local < pos:
            listing.hidden.append(
                Hidden(e.local, pos - e.local, f"entry {e.name!r} overlaps the one before it")
            )
        elif e.local > pos:
            where = "before the first member" if pos == 0 else "between members"
            listing.hidden.append(Hidden(pos, e.local - pos, f"bytes {where}"))
        data, end, local_extra, local_extra_at = _local(f, e, listing)
        if end > start:
            raise MalformedArchive(f"entry {e.name!r} runs into the central directory")
        member = Member(e.name, _kind(e), _fields(e, local_extra, local_extra_at), e.local)
        member.opener = _opener(f, e, data, member, budget)
        member.stored = byte_range(f, data, e.csize, "member data")
        member.identity = (e.method, e.flags & 1, e.crc, e.usize)
        members[id(e)] = member
        pos = max(pos, end)
    if pos < start:
        listing.hidden.append(
            Hidden(pos, start - pos, "bytes between the last member and the central directory")
        )
    listing.members = [members[id(e)] for e in entries]
    return listing


def _opener(f: BinaryIO, e: _Entry, data: int, member: Member, budget: Budget) -> Opener:
    return lambda: _content(f, e, data, member, budget)


Engine = Union["zlib._Decompress", bz2.BZ2Decompressor, None]


def _decompressor(e: _Entry) -> Engine:
    if e.flags & 1:
        raise LimitHit("archive.unsupported", f"{e.name!r} is encrypted")
    if e.method == 0:
        return None
    if e.method == 8:
        return zlib.decompressobj(-15)
    if e.method == 12:
        return bz2.BZ2Decompressor()
    raise LimitHit("archive.unsupported", f"{e.name!r} uses compression method {e.method}")


def _expand(engine: Engine, block: bytes) -> Iterator[bytes]:
    """Decompress `block` in pieces of at most CHUNK bytes (a bomb never fills memory)."""
    if engine is None:
        yield block
    elif isinstance(engine, bz2.BZ2Decompressor):
        data = block
        while not engine.eof:
            out = engine.decompress(data, CHUNK)
            data = b""
            if out:
                yield out
            if engine.needs_input:
                break
    else:
        data = block
        while data:
            out = engine.decompress(data, CHUNK)
            data = engine.unconsumed_tail
            if out:
                yield out
            if engine.eof:
                break


def _finished(engine: Engine) -> bool:
    if engine is None:
        return True
    return engine.eof and not engine.unused_data


def _content(f: BinaryIO, e: _Entry, data: int, member: Member, budget: Budget) -> Iterator[bytes]:
    """Stream the member's content; check its CRC, size and that nothing follows the stream.

    Sets `member.raw` to the SHA-256 of the stored bytes once they are all read.

    Raises:
        MalformedArchive: CRC, size or stream end do not match (hidden or corrupt data).
        LimitHit: a bound of `budget` was reached, or the method is unsupported.
    """
    engine = _decompressor(e)
    crc, total, left, pos = 0, 0, e.csize, data
    raw = hashlib.sha256()
    while left:
        f.seek(pos)
        block = f.read(min(CHUNK, left))
        if not block:
            raise MalformedArchive(f"{e.name!r} is truncated")
        raw.update(block)
        pos += len(block)
        left -= len(block)
        for out in _expand(engine, block):
            budget.spend(len(out))
            crc = zlib.crc32(out, crc)
            total += len(out)
            yield out
    if not _finished(engine):
        raise MalformedArchive(f"{e.name!r}: its compressed stream does not end at its size")
    if crc != e.crc or total != e.usize:
        raise MalformedArchive(f"{e.name!r}: CRC or size does not match its content")
    member.raw = raw.hexdigest()
