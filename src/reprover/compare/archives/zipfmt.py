"""ZIP family (zip, wheel, jar, apk, nupkg): a strict walk of every byte of the file.

Owns: reading a ZIP into a `Listing`: every local header walked in file order after the
central directory (`zipcentral`), so that bytes before, between and after members, local
headers that disagree with the central directory (their CRC and sizes beside a data
descriptor too: zero or the central values), duplicate names, overlapping entries and
data after a member's compressed stream are all reported as `Hidden`; member content
streamed (stored, deflate, bzip2) with its CRC and size checked.
Does not own: the end record and central directory (`zipcentral`), comparing two listings
(`driver`), deciding what is allowed (`reprover.policy`).

Why not stdlib `zipfile`: it trusts the central directory and never reads the bytes it does not
reference, tolerates data prepended to the archive, and reads local headers only for their
lengths, so it cannot account for every byte; this walk is written for that strictness. It
reads headers with bounds checks and streams member data in 1 MiB blocks. A member keeps its
central record (in the directory's bytes, `ziptable.Table`) and a few numbers, not its
fields or an object: members are views made when asked, fields built when two members'
headers differ, so memory per member is its record and about 40 bytes.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import BinaryIO, Union, overload

from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Opener,
    Span,
    read_exact,
)
from reprover.compare.archives.zipcentral import (
    central_directory,
    end_record,
    entry_fields,
    extra_records,
)
from reprover.compare.archives.ziptable import Entry, Table

LOC, DESCRIPTOR = b"PK\x03\x04", b"PK\x07\x08"
LOCAL = struct.Struct("<4sHHHHHIIIHH")
PEEK = 512  # bytes read at once for a local header, its name and extra field


def _local(f: BinaryIO, e: Entry, listing: Listing) -> int:
    """Check the local header against the central directory; set `e.data` and `e.local_extra`.

    Returns where the member's bytes end (after its data descriptor, if any).
    """
    f.seek(e.local)
    peek = f.read(PEEK)  # header, name and extra at once, for most members
    if len(peek) < 30:
        raise MalformedArchive(f"truncated: wanted 30 bytes at {e.local}")
    sig, needed, flags, method, t, d, crc, csize, usize, nlen, xlen = LOCAL.unpack_from(peek)
    zero = (crc, csize, usize) == (0, 0, 0)
    if sig != LOC:
        raise MalformedArchive(f"no local header for {e.name!r} at {e.local}")
    if 30 + nlen + xlen > len(peek):
        peek = read_exact(f, e.local, 30 + nlen + xlen)
    name = peek[30 : 30 + nlen]
    extra = peek[30 + nlen : 30 + nlen + xlen]
    if len(name) != nlen or len(extra) != xlen:
        raise MalformedArchive(f"truncated: local header of {e.name!r} at {e.local}")
    records = extra_records(extra) if extra else []
    zip64_records = [p for i, _, p in records or () if i == 1]
    local64 = bool(zip64_records)
    disagree = [
        what
        for what, a, b in (
            ("name", name, e.raw_name),
            ("version needed", needed, e.needed),
            ("flags", flags, e.flags),
            ("method", method, e.method),
            ("time", (d << 16) | t, e.dostime),
            ("a second ZIP64 record", len(zip64_records) > 1, False),  # no reader reads it
        )
        if a != b
    ]
    record = zip64_records[0] if zip64_records else b""
    if local64 and (usize, csize) == (0xFFFFFFFF, 0xFFFFFFFF) and len(record) == 16:
        usize, csize = struct.unpack_from("<QQ", record)  # ZIP64 local sizes: both, in order
    elif local64:
        disagree.append("ZIP64 local sizes")
    # beside a data descriptor (checked below) they are zero, or else the central values
    if not (e.flags & 8 and (crc, csize, usize) == (0, 0, 0)):
        for what, a, b in (("crc", crc, e.crc), ("compressed size", csize, e.csize),
                           ("size", usize, e.usize)):  # fmt: skip
            if a != b:
                disagree.append(what)
    if disagree:
        listing.hidden.append(
            Hidden(e.local, 30 + nlen, f"local header of {e.name!r} disagrees with the central "
                   f"directory: {', '.join(disagree)}")
        )  # fmt: skip
    e.local_extra = extra
    e.data = e.local + 30 + nlen + xlen
    end = e.data + e.csize
    if e.flags & 8:
        wide = e.zip64 or local64
        sig = read_exact(f, end, 4)
        at = end + (4 if sig == DESCRIPTOR else 0)
        e.spelling = _spelling(zero=zero, signed=sig == DESCRIPTOR)
        fmt = "<IQQ" if wide else "<III"
        got = struct.unpack(fmt, read_exact(f, at, struct.calcsize(fmt)))
        if got != (e.crc, e.csize, e.usize):
            listing.hidden.append(
                Hidden(end, at - end + struct.calcsize(fmt),
                       f"data descriptor of {e.name!r} disagrees with the central directory")
            )  # fmt: skip
        end = at + struct.calcsize(fmt)
    return end


def _spelling(*, zero: bool, signed: bool) -> str:
    """How a data descriptor is spelt, or "" when as every streaming writer spells it (local
    CRC and sizes zero, the descriptor with its signature): the other spellings carry a bit
    or two an entry's fields would otherwise not show, so they become a field."""
    if zero and signed:
        return ""
    local = "zero" if zero else "the central values"
    return f"local CRC and sizes {local}, descriptor {'with' if signed else 'without'} signature"


def read_zip(f: BinaryIO, size: int, budget: Budget) -> Listing:
    """Read and account for every byte of a ZIP file of `size` bytes open in `f`.

    Members are listed in central-directory order; their content is streamed on demand.

    Raises:
        MalformedArchive: the structure cannot be followed (no end record, truncated headers).
        LimitHit: a bound of `budget` was reached.
    """
    listing = Listing("zip", "zip.entry")
    start, cd_size, count, cd_end, shift = end_record(f, size, listing)
    entries = central_directory(f, (start, cd_size, count), listing, budget)
    if shift:
        for i, local in enumerate(entries.local):
            entries.local[i] = local + shift
    if start + cd_size != cd_end:
        raise MalformedArchive("central directory does not end at the end record")
    seen: set[bytes] = set()
    for e in entries:
        raw_name = e.raw_name
        if raw_name in seen:
            listing.hidden.append(Hidden(e.at, 46, f"duplicate name {e.name!r}"))
        seen.add(raw_name)
    del seen
    pos = shift
    for index in sorted(range(len(entries)), key=entries.local.__getitem__):
        e = entries[index]
        if e.local < pos:
            listing.hidden.append(
                Hidden(e.local, pos - e.local, f"entry {e.name!r} overlaps the one before it")
            )
        elif e.local > pos:
            where = "before the first member" if pos == 0 else "between members"
            listing.hidden.append(Hidden(pos, e.local - pos, f"bytes {where}"))
        end = _local(f, e, listing)
        if end > start:
            raise MalformedArchive(f"entry {e.name!r} runs into the central directory")
        pos = max(pos, end)
    if pos < start:
        listing.hidden.append(
            Hidden(pos, start - pos, "bytes between the last member and the central directory")
        )
    listing.members = _Members(entries)
    return listing


class _Members(Sequence[Member]):
    """The members of a ZIP, each a view made when asked (nothing held per member)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    @overload
    def __getitem__(self, index: int) -> Member: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Member]: ...

    def __getitem__(self, index: int | slice) -> Member | Sequence[Member]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        if index < 0:
            index += len(self.table)
        return _ZipMember(self.table[index])

    def __iter__(self) -> Iterator[Member]:
        return (_ZipMember(Entry(self.table, i)) for i in range(len(self.table)))


class _ZipMember(Member):
    """The listing's view of an entry: nothing built until asked (fields, content, spans)."""

    __slots__ = ("entry",)

    def __init__(self, e: Entry) -> None:
        self.entry = e  # Member's own slots stay unset: every one is a view of the entry

    @property
    def name(self) -> str:
        """The name, decoded from the central record."""
        return self.entry.name

    @name.setter
    def name(self, value: str) -> None:
        raise AttributeError("a ZIP member's name is its entry's: read-only")

    @property
    def kind(self) -> str:
        """file, dir, symlink or other (`Entry.kind`)."""
        return self.entry.kind()

    @kind.setter
    def kind(self, value: str) -> None:
        raise AttributeError("a ZIP member's kind is its entry's: read-only")

    @property
    def offset(self) -> int:
        """Where its local header is."""
        return self.entry.local

    @offset.setter
    def offset(self, value: int) -> None:
        raise AttributeError("a ZIP member's offset is its entry's: read-only")

    @property
    def target(self) -> str | None:
        """None: a ZIP symlink's target is its content, compared as content."""
        return None

    @target.setter
    def target(self, value: str | None) -> None:
        raise AttributeError("a ZIP member's target is its entry's: read-only")

    @property
    def plain(self) -> bool:
        """False: the content is checked against its CRC even when stored."""
        return False

    @plain.setter
    def plain(self, value: bool) -> None:
        raise AttributeError("a ZIP member's plain is its entry's: read-only")

    @property
    def fields(self) -> Mapping[str, Field]:
        """Built from the central record and the local extra field on each read."""
        return entry_fields(self.entry)

    @property
    def opener(self) -> Opener | None:
        """Streams the content, its CRC, size and stream end checked."""
        return partial(_content, self.entry)

    @opener.setter
    def opener(self, value: Opener | None) -> None:
        raise AttributeError("a ZIP member's opener is its entry's: read-only")

    @property
    def stored(self) -> Span:
        """The stored (compressed) bytes."""
        return Span(self.entry.file, self.entry.data, self.entry.csize)

    @stored.setter
    def stored(self, value: object) -> None:
        raise AttributeError("a ZIP member's stored is its entry's: read-only")

    @property
    def identity(self) -> tuple[int, int, int, int]:
        """Method, encryption, CRC and size: with equal stored bytes, equal content."""
        return self.entry.identity()

    @identity.setter
    def identity(self, value: object) -> None:
        raise AttributeError("a ZIP member's identity is its entry's: read-only")

    @property
    def key(self) -> bytes:
        """The central record (offset zeroed) and the local extra field."""
        return self.entry.key

    @key.setter
    def key(self, value: object) -> None:
        raise AttributeError("a ZIP member's key is its entry's: read-only")


Engine = Union["zlib._Decompress", bz2.BZ2Decompressor, None]


def _decompressor(e: Entry) -> Engine:
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


def _content(e: Entry) -> Iterator[bytes]:
    """Stream the member's content; check its CRC, size and that nothing follows the stream.

    Raises:
        MalformedArchive: CRC, size or stream end do not match (hidden or corrupt data).
        LimitHit: a bound of the budget was reached, or the method is unsupported.
    """
    engine = _decompressor(e)
    f, budget = e.file, e.budget
    crc, total, left, pos = 0, 0, e.csize, e.data
    while left:
        f.seek(pos)
        block = f.read(min(CHUNK, left))
        if not block:
            raise MalformedArchive(f"{e.name!r} is truncated")
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
