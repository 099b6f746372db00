"""ZIP end record and central directory: where every entry says it is, and what it says.

Owns: finding the end record (ZIP64 too, with bytes before the archive or after the end
record, and ZIP64 extensible data, reported as `Hidden`), reading the central directory into
a `ziptable.Table` (the directory's bytes kept once, a few numbers per entry in arrays), and
turning an entry and its local extra field into `Field`s on demand (`entry_fields`), so a
listing of 200,000 members holds one bytes object and a few arrays rather than 200,000 objects
or dictionaries. Bytes of an entry no field reads are `Hidden`: a ZIP64 record longer than the
fields it replaces, a disk number but 0.
Does not own: how entries are held (`ziptable`), the local headers and member data (`zipfmt`
walks them in file order).
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import BinaryIO

from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import (
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    read_exact,
)
from reprover.compare.archives.ziptable import UNIX, Entry, Table
from reprover.model import Kind

EOCD, EOCD64, LOC64 = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
CEN = b"PK\x01\x02"
MAX_COMMENT = 0xFFFF
COMPRESSION_FLAGS = 0x000E  # deflate options (bits 1-2) and the data descriptor (bit 3)
EXTRA_NAMES = {0x5455: "extra.mtime", 0x000A: "extra.ntfs.mtime", 0x7875: "extra.owner"}
CENTRAL = struct.Struct("<HHHHHHIIIHHHHHII")


def extra_records(extra: bytes) -> list[tuple[int, int, bytes]] | None:
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


def _zip64(entry: Entry, data: bytes, disk: int) -> int:
    """Apply a ZIP64 extended-information record to the entry's 0xFFFFFFFF fields; return
    how many of its bytes no field reads (a zero 32-bit disk number, for a `disk` of 0xFFFF,
    is read)."""
    pos = 0
    for attr in ("usize", "csize", "local"):
        if getattr(entry, attr) == 0xFFFFFFFF:
            if pos + 8 > len(data):
                raise MalformedArchive(f"ZIP64 record of {entry.name!r} is too short")
            setattr(entry, attr, struct.unpack_from("<Q", data, pos)[0])
            pos += 8
    entry.zip64 = True
    if disk == 0xFFFF and data[pos:] == bytes(4):
        return 0
    return len(data) - pos


def _classic_end(listing: Listing, at: int, raw: bytes, zip64: tuple[int, ...]) -> None:
    """The classic end record's six numbers beside a ZIP64 end record, which readers take
    instead: each must be its placeholder (all ones) or the ZIP64 value where it fits, else
    its bytes are hidden; which of the two each holds is the field `zip.end.placeholders`
    (a writer's habit, the rebuild's too), so neither choice can carry data."""
    widths = (2, 2, 2, 2, 4, 4)
    classic = struct.unpack("<HHHHII", raw)
    ones = tuple(value == (1 << 8 * w) - 1 for value, w in zip(classic, widths, strict=True))
    fits = all(
        one or value == real
        for value, real, one in zip(classic, zip64, ones, strict=True)
    )  # fmt: skip
    if not fits:
        listing.hidden.append(Hidden(at + 4, 16, "the classic end record's numbers are neither "
                                     "placeholders nor the ZIP64 end record's"))  # fmt: skip
    listing.fields["zip.end.placeholders"] = Field(ones, at + 4, 16)


def end_record(f: BinaryIO, size: int, listing: Listing) -> tuple[int, int, int, int, int]:
    """Find the end record; return (cd start, cd size, entry count, where the cd must end,
    bytes prepended to the archive)."""
    span = min(size, 22 + MAX_COMMENT)
    tail = read_exact(f, size - span, span)
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
    if at >= 20 and read_exact(f, at - 20, 4) == LOC64:
        _, loc_disk, rec_at, disks = struct.unpack("<IIQI", read_exact(f, at - 20, 20))
        record = read_exact(f, rec_at, 56)
        if record[:4] != EOCD64:
            raise MalformedArchive("ZIP64 locator does not point at a ZIP64 end record")
        if loc_disk or disks > 1:
            raise MalformedArchive("multi-disk archives are not supported")
        rec_size, *versions, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = (
            struct.unpack_from("<QHHIIQQQQ", record, 4)
        )
        listing.fields["zip64.version"] = Field(tuple(versions), rec_at + 12, 4)
        listing.fields["zip64.locator.disks"] = Field(disks, at - 4, 4)
        _classic_end(listing, at, tail[pos + 4 : pos + 20],
                     (disk, cd_disk, n_disk, n_total, cd_size, cd_offset))  # fmt: skip
        if rec_at + 12 + rec_size != at - 20 or rec_size != 44:  # 44: no extensible data
            listing.hidden.append(
                Hidden(rec_at, at - 20 - rec_at, "ZIP64 end record holds extensible data or "
                       "does not reach its locator")
            )  # fmt: skip
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


def central_directory(
    f: BinaryIO, span: tuple[int, int, int], listing: Listing, budget: Budget
) -> Table:
    """Every entry of the central directory at `span` (start, size, count), in its order.

    Raises:
        MalformedArchive: an entry is malformed or overruns the directory.
        LimitHit: a bound of `budget` was reached (member count, name length).
    """
    start, cd_size, count = span
    data = read_exact(f, start, cd_size)
    table = Table(data, start, f, budget)
    pos = 0
    for _ in range(count):
        if data[pos : pos + 4] != CEN or pos + 46 > len(data):
            raise MalformedArchive(f"central directory entry {len(table)} is malformed")
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        end = pos + 46 + nlen + xlen + clen
        if end > len(data):
            raise MalformedArchive(f"central directory entry {len(table)} overruns it")
        budget.member(data[pos + 46 : pos + 46 + nlen])
        entry = table.add(pos)
        disk = struct.unpack_from("<H", data, pos + 34)[0]
        for ident, _, payload in extra_records(entry.extra) or ():
            if ident == 1 and (slack := _zip64(entry, payload, disk)):
                listing.hidden.append(Hidden(start + pos + 46 + nlen, xlen, f"ZIP64 record of "
                                             f"{entry.name!r} holds {slack} byte(s) no field "
                                             "reads"))  # fmt: skip
        if disk not in (0, 0xFFFF) or (disk == 0xFFFF and not entry.zip64):
            listing.hidden.append(
                Hidden(start + pos + 34, 2, f"{entry.name!r} starts on disk {disk}, not 0")
            )
        pos = end
    if pos != len(data):
        listing.hidden.append(
            Hidden(start + pos, len(data) - pos, "bytes in the central directory after its entries")
        )
    return table


def _dostime(value: int) -> str:
    d, t = value >> 16, value & 0xFFFF
    try:
        moment = datetime(  # DOS times have no zone
            1980 + (d >> 9), (d >> 5) & 15, d & 31, t >> 11, (t >> 5) & 63, (t & 31) * 2
        )
    except ValueError:
        return f"{value:#010x} (invalid DOS time)"
    return moment.isoformat()


def entry_fields(e: Entry) -> dict[str, Field]:
    """The fields of an entry and its local extra field, with where each lies."""
    at, local_extra = e.at, e.local_extra
    local_extra_at = e.data - len(local_extra)
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
    if e.spelling:  # one bit or two per entry no field would show otherwise
        fields["local.descriptor"] = Field(e.spelling, e.local, 30, show=e.spelling)
    if e.made_by >> 8 == UNIX:
        mode = e.external >> 16
        fields["mode"] = Field(mode, at + 38, 4, show=f"{mode:o}")
        fields["attributes.dos"] = Field(e.external & 0xFFFF, at + 38, 4)
    else:
        fields["attributes.external"] = Field(e.external, at + 38, 4)
    extra_at = at + 46 + len(e.raw_name)
    for prefix, extra, base in (("", e.extra, extra_at), ("local.", local_extra, local_extra_at)):
        records = extra_records(extra)
        if records is None:
            fields[prefix + "extra"] = Field(extra, base, len(extra))
            continue
        zip64_seen = False
        for ident, pos, payload in records:
            if ident == 1 and not zip64_seen:
                zip64_seen = True
                continue  # the ZIP64 record readers use (the first): checked by the walk itself
            if ident == 1:  # a second one no reader reads: bytes beside the one they read
                key = prefix + f"extra[{ident:#06x}]@{pos}"
                fields[key] = Field(payload, base + pos, 4 + len(payload), Kind.HIDDEN)
                continue
            named = ident in EXTRA_NAMES and _well_formed(ident, payload)
            key = prefix + (EXTRA_NAMES[ident] if named else f"extra[{ident:#06x}]")
            kind = Kind.TIMESTAMP if key.endswith("mtime") else Kind.METADATA
            fields[key] = Field(payload, base + pos, 4 + len(payload), kind)
    return fields


def _well_formed(ident: int, payload: bytes) -> bool:
    """Whether a time or owner extra holds only its fields (else no rule may allow it: a
    payload of data under a time or owner record is data, not a time)."""
    if ident == 0x5455:  # flags (bits 0-2), then one 4-byte time per flag bit (central: fewer)
        times = bin(payload[0] & 7).count("1") if payload else 0
        whole = len(payload) % 4 == 1 and len(payload) <= 1 + 4 * times
        return whole and not payload[0] & ~7
    if ident == 0x000A:  # 4 reserved bytes (zero), one tag 1 of 24 bytes (mtime, atime, ctime)
        return len(payload) == 32 and payload[:8] == struct.pack("<IHH", 0, 1, 24)
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
