"""How a ZIP's central-directory entries are held: compactly, one row each, views on demand.

Owns: `Table` (the central directory's bytes kept once, and per entry where its record starts
and four numbers in arrays: no Python object per entry) and `Entry` (a view of one row, made
when asked: its record's fields read from the directory's bytes, its offsets from the arrays).
Does not own: reading the directory or the end record (`zipcentral`), the local headers
(`zipfmt`).

What must be held per member to compare two ZIPs: its name (to match members by name and
find duplicate names) and where it lies; everything else can be read again. The table holds
its central record (in the directory's bytes, which hold the name), where that record starts
and four offsets or sizes (8 bytes each: 40 bytes a member besides its record), and its local
extra field only when it has one.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from typing import BinaryIO

from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import decode_name

UNIX = 3
S_IFMT, S_IFLNK, S_IFDIR = 0o170000, 0o120000, 0o040000
OFFSET_AT = 42  # the local header offset inside a central record
U16, U32, LENGTHS = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<HHH")
IDENTITY = struct.Struct("<HHHHI")  # flags, method, time, date, CRC (from offset 8)


class Table:
    """Every central-directory entry of one ZIP: the directory's bytes once, and per entry
    where its record starts and four numbers (no Python object per entry; `Entry` views a row).

    `csize`, `usize` and `local` are the ZIP64 values when the entry has them; `data` (where
    its stored bytes start) and `local_extra` are set by the local-header walk (`zipfmt`).
    """

    __slots__ = ("budget", "cd", "csize", "data", "file", "local", "local_extra", "pos",
                 "spelling", "start", "usize", "zip64")  # fmt: skip

    def __init__(self, cd: bytes, start: int, file: BinaryIO, budget: Budget) -> None:
        self.cd, self.start, self.file, self.budget = cd, start, file, budget
        self.pos, self.csize, self.usize = array("Q"), array("Q"), array("Q")
        self.local, self.data = array("Q"), array("Q")
        self.zip64 = bytearray()
        self.local_extra: dict[int, bytes] = {}  # only the entries that have one
        self.spelling: dict[int, str] = {}  # a data descriptor spelt unusually (`zipfmt`)

    def add(self, pos: int) -> Entry:
        """Add the entry whose record starts at `pos` in the directory; return its view."""
        csize, usize = struct.unpack_from("<II", self.cd, pos + 20)
        (local,) = struct.unpack_from("<I", self.cd, pos + OFFSET_AT)
        self.pos.append(pos)
        self.csize.append(csize)
        self.usize.append(usize)
        self.local.append(local)
        self.data.append(0)
        self.zip64.append(0)
        return Entry(self, len(self.pos) - 1)

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, index: int) -> Entry:
        if not 0 <= index < len(self.pos):
            raise IndexError(index)
        return Entry(self, index)

    def __iter__(self) -> Iterator[Entry]:
        return (Entry(self, i) for i in range(len(self.pos)))


class Entry:
    """One central-directory entry, a view of a `Table` row: its record and where it lies.

    `record` is the entry's central record with its local header offset zeroed (that offset
    moves whenever an earlier member changes size, and is checked by the walk, not compared),
    so two entries with equal `record` and equal local extra fields have equal `entry_fields`.
    """

    __slots__ = ("index", "pos", "table")

    def __init__(self, table: Table, index: int) -> None:
        self.table, self.index, self.pos = table, index, table.pos[index]

    def _u16(self, at: int) -> int:
        return int(U16.unpack_from(self.table.cd, self.pos + at)[0])

    def _u32(self, at: int) -> int:
        return int(U32.unpack_from(self.table.cd, self.pos + at)[0])

    made_by = property(lambda self: self._u16(4), doc="version made by (high byte: system)")
    needed = property(lambda self: self._u16(6), doc="version needed to extract")
    flags = property(lambda self: self._u16(8), doc="general purpose flags")
    method = property(lambda self: self._u16(10), doc="compression method")
    dostime = property(lambda self: self._u16(14) << 16 | self._u16(12), doc="DOS date, time")
    crc = property(lambda self: self._u32(16), doc="CRC-32 of the content")
    nlen = property(lambda self: self._u16(28), doc="name length")
    xlen = property(lambda self: self._u16(30), doc="extra field length")
    clen = property(lambda self: self._u16(32), doc="comment length")
    internal = property(lambda self: self._u16(36), doc="internal attributes")
    external = property(lambda self: self._u32(38), doc="external attributes (Unix mode << 16)")

    def identity(self) -> tuple[int, int, int, int]:
        """Method, encryption flag, CRC and size: with equal stored bytes, equal content."""
        flags, method, _, _, crc = IDENTITY.unpack_from(self.table.cd, self.pos + 8)
        return (method, flags & 1, crc, self.table.usize[self.index])

    def kind(self) -> str:
        """file, dir, symlink or other, from the Unix mode or the name."""
        made_by = self._u16(4)
        if made_by >> 8 == UNIX:
            fmt = (self._u32(38) >> 16) & S_IFMT
            if fmt == S_IFLNK:
                return "symlink"
            if fmt == S_IFDIR:
                return "dir"
            if fmt not in (0, 0o100000):
                return "other"
        return "dir" if self.name.endswith("/") else "file"

    @property
    def csize(self) -> int:
        """Compressed size (from the ZIP64 record when it has one)."""
        return self.table.csize[self.index]

    @csize.setter
    def csize(self, value: int) -> None:
        self.table.csize[self.index] = value

    @property
    def usize(self) -> int:
        """Size (likewise)."""
        return self.table.usize[self.index]

    @usize.setter
    def usize(self, value: int) -> None:
        self.table.usize[self.index] = value

    @property
    def local(self) -> int:
        """Offset of its local header (likewise)."""
        return self.table.local[self.index]

    @local.setter
    def local(self, value: int) -> None:
        self.table.local[self.index] = value

    @property
    def data(self) -> int:
        """Offset of its stored bytes (set by the local-header walk)."""
        return self.table.data[self.index]

    @data.setter
    def data(self, value: int) -> None:
        self.table.data[self.index] = value

    @property
    def local_extra(self) -> bytes:
        """Its local extra field (set by the local-header walk)."""
        return self.table.local_extra.get(self.index, b"")

    @local_extra.setter
    def local_extra(self, value: bytes) -> None:
        if value:
            self.table.local_extra[self.index] = value
        else:
            self.table.local_extra.pop(self.index, None)

    @property
    def spelling(self) -> str:
        """How its data descriptor is spelt, when not as every streaming writer spells it
        (local CRC and sizes zero, the descriptor with its signature); else empty."""
        return self.table.spelling.get(self.index, "")

    @spelling.setter
    def spelling(self, value: str) -> None:
        if value:
            self.table.spelling[self.index] = value

    @property
    def zip64(self) -> bool:
        """Whether it has a ZIP64 extended-information record."""
        return bool(self.table.zip64[self.index])

    @zip64.setter
    def zip64(self, value: bool) -> None:
        self.table.zip64[self.index] = int(value)

    @property
    def at(self) -> int:
        """Offset of its central record in the file."""
        return self.table.start + self.pos

    @property
    def file(self) -> BinaryIO:
        """The archive it is in."""
        return self.table.file

    @property
    def budget(self) -> Budget:
        """The budget its content is expanded under."""
        return self.table.budget

    @property
    def raw_name(self) -> bytes:
        """The name as stored."""
        pos = self.pos + 46
        return self.table.cd[pos : pos + self.nlen]

    @property
    def name(self) -> str:
        """The name as text (UTF-8 when flagged or ASCII, else CP437)."""
        cd, pos = self.table.cd, self.pos
        (nlen,) = U16.unpack_from(cd, pos + 28)
        raw = cd[pos + 46 : pos + 46 + nlen]
        if raw.isascii():
            return raw.decode("ascii")
        return decode_name(raw, utf8=bool(self.flags & 0x800))

    @property
    def extra(self) -> bytes:
        """The central extra field."""
        pos = self.pos + 46 + self.nlen
        return self.table.cd[pos : pos + self.xlen]

    @property
    def comment(self) -> bytes:
        """The entry comment."""
        pos = self.pos + 46 + self.nlen + self.xlen
        return self.table.cd[pos : pos + self.clen]

    @property
    def record(self) -> bytes:
        """Its central record, the local header offset zeroed."""
        cd, pos = self.table.cd, self.pos
        nlen, xlen, clen = LENGTHS.unpack_from(cd, pos + 28)
        end = pos + 46 + nlen + xlen + clen
        return cd[pos : pos + OFFSET_AT] + bytes(4) + cd[pos + OFFSET_AT + 4 : end]

    @property
    def key(self) -> bytes:
        """Bytes whose equality on two entries implies equal fields."""
        extra, spelling = self.local_extra, self.spelling  # the record delimits itself;
        # the extra's length delimits it from the spelling (an extra ending in the spelling)
        return self.record + len(extra).to_bytes(4, "little") + extra + spelling.encode()
