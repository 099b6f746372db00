"""A strict reader of an MSI database's tables: string pool, column catalogue, rows.

Owns: `Database` (from the streams `!_StringPool`, `!_StringData` and `!_Columns`, decoded
stream names as `ole` lists them) and `Table` (one table stream: rows of cells, each cell its
byte offset in the stream and its value as stored). The layout, as Windows Installer and
Wine's msi write it: the pool starts with the codepage (its top bit: string references are 3
bytes, else 2), then one (length, reference count) pair of 16-bit words per string id from 1
(a zero length with a count: the next pair holds the length's high and low words), the strings
back to back in `!_StringData`; a table is stored column by column, each column its rows'
values one after another; a string or stream column holds string ids, a 2-byte integer is
stored with 0x8000 added and a 4-byte one with 0x80000000 added (0: null).
Strict: the string data is exactly what the pool's lengths cover; a table's bytes are a whole
number of rows; columns are numbered 1..n with widths 2, 4 or a string reference; anything
else is `BadTable`.
Why not a library: olefile reads the streams but not the database; Python's msilib is
Windows-only (and gone from Python 3.13); msitools' libmsi has no Python binding and accepts
what a strict reading must refuse (it stops reading the pool at a bad length). msiinfo and
msidump (msitools) are the tests' oracle.
Does not own: reading the compound file (`ole`), deciding what a difference means
(`restatemsi`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

STRING, VALID, NULLABLE = 0x0800, 0x0100, 0x1000
MAX_STREAM = 16 << 20  # larger database streams are not read


class BadTable(Exception):  # noqa: N818 - a finding about the input
    """The database streams are not what Windows Installer writes."""


@dataclass(frozen=True)
class Column:
    """One column: its name, type bits and stored width in bytes."""

    name: str
    type: int
    width: int

    @property
    def is_string(self) -> bool:
        """Whether its cells are string ids (strings and stream names)."""
        return bool(self.type & STRING)


@dataclass(frozen=True)
class Table:
    """One table's rows; each cell is (offset in the stream, stored value, width)."""

    name: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[tuple[int, int, int], ...], ...]

    def index(self, name: str) -> int:
        """The position of column `name`.

        Raises:
            BadTable: the table has no such column.
        """
        for i, c in enumerate(self.columns):
            if c.name == name:
                return i
        raise BadTable(f"table {self.name} has no column {name}")


class Database:
    """The string pool and column catalogue of one MSI database."""

    def __init__(self, pool: bytes, data: bytes, columns: bytes) -> None:
        """Raises: BadTable."""
        self.refsize, self.strings = _strings(pool, data)
        self.columns = self._catalogue(columns)

    def string(self, ref: int) -> str | None:
        """The string with id `ref` (0: null).

        Raises:
            BadTable: no string has that id.
        """
        if ref == 0:
            return None
        if ref >= len(self.strings):
            raise BadTable(f"string id {ref} is not in the pool")
        return self.strings[ref]

    def _catalogue(self, raw: bytes) -> dict[str, tuple[Column, ...]]:
        ref = self.refsize
        layout = (Column("Table", STRING, ref), Column("Number", 0, 2),
                  Column("Name", STRING, ref), Column("Type", 0, 2))  # fmt: skip
        found: dict[str, dict[int, Column]] = {}
        for row in _rows(raw, layout, "_Columns"):
            table, name = self.string(row[0][1]), self.string(row[2][1])
            number, kind = _int(row[1][1], 2), _int(row[3][1], 2)
            if table is None or name is None or number is None or kind is None:
                raise BadTable("a _Columns row has a null cell")
            cols = found.setdefault(table, {})
            if number in cols:
                raise BadTable(f"table {table} has column {number} twice")
            cols[number] = Column(name, kind, self._width(kind, table, name))
        out = {}
        for table, cols in found.items():
            if sorted(cols) != list(range(1, len(cols) + 1)):
                raise BadTable(f"table {table}'s columns are not numbered 1..{len(cols)}")
            out[table] = tuple(cols[n] for n in sorted(cols))
        return out

    def _width(self, kind: int, table: str, name: str) -> int:
        if kind & ~NULLABLE == STRING | VALID:  # a stream column: a string id of 2 bytes
            return 2
        if kind & STRING:
            return self.refsize
        if kind & 0xFF in (1, 2):
            return 2
        if kind & 0xFF == 4:
            return 4
        raise BadTable(f"column {table}.{name} has type {kind:#06x}")

    def table(self, name: str, raw: bytes) -> Table:
        """Table `name` from its stream's bytes.

        Raises:
            BadTable: the catalogue has no such table or the bytes are not whole rows.
        """
        columns = self.columns.get(name)
        if columns is None:
            raise BadTable(f"no table {name} in _Columns")
        return Table(name, columns, tuple(_rows(raw, columns, name)))


def _strings(pool: bytes, data: bytes) -> tuple[int, list[str | None]]:
    if len(pool) < 4 or len(pool) % 4:
        raise BadTable(f"the string pool is {len(pool)} bytes, not 4 per entry")
    words = struct.unpack(f"<{len(pool) // 2}H", pool)
    codepage = words[0] | ((words[1] & 0x7FFF) << 16)
    refsize = 3 if words[1] & 0x8000 else 2
    encoding = "utf-8" if codepage == 65001 else "latin-1"
    strings: list[str | None] = [None]
    i, at, count = 1, 0, len(words) // 2
    while i < count:
        length, refs = words[2 * i], words[2 * i + 1]
        if length == 0 and refs == 0:  # an unused id
            strings.append(None)
            i += 1
            continue
        if length == 0:  # a long string: the next pair holds its length
            if i + 1 >= count:
                raise BadTable("the string pool ends inside a long string's entry")
            length = (words[2 * i + 3] << 16) | words[2 * i + 2]
            i += 2
        else:
            i += 1
        if at + length > len(data):
            raise BadTable("the string pool's lengths run past the string data")
        strings.append(data[at : at + length].decode(encoding, "surrogateescape"))
        at += length
    if at != len(data):
        raise BadTable(f"{len(data) - at} byte(s) of string data no pool entry covers")
    return refsize, strings


def _rows(
    raw: bytes, columns: tuple[Column, ...], name: str
) -> list[tuple[tuple[int, int, int], ...]]:
    width = sum(c.width for c in columns)
    if width == 0 or len(raw) % width:
        raise BadTable(f"table {name}'s {len(raw)} bytes are not whole rows of {width}")
    n = len(raw) // width
    starts, at = [], 0
    for c in columns:
        starts.append(at)
        at += n * c.width
    return [
        tuple((s + r * c.width, int.from_bytes(raw[s + r * c.width : s + (r + 1) * c.width],
                                               "little"), c.width)
              for s, c in zip(starts, columns, strict=True))
        for r in range(n)
    ]  # fmt: skip


def _int(stored: int, width: int) -> int | None:
    """A stored integer's value (None: null)."""
    if stored == 0:
        return None
    bias = 1 << (8 * width - 1)
    value = stored ^ bias
    return value - (1 << 8 * width) if value & bias else value


def stored_i4(value: int) -> int:
    """A signed 32-bit value as a table stores it (0x80000000 added)."""
    return (value + 0x80000000) & 0xFFFFFFFF
