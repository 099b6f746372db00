"""Plain-data region maps built inside the parsing worker.

Owns: `RegionBuilder`, which collects labelled byte ranges (regions), symbols and notes for one
file and turns them into plain data (`RegionMap`: a dict of lists of tuples) that crosses the
process boundary; `Reader`, bounds-checked little helpers to read fixed-layout header fields.
Does not own: any format knowledge (see `regions_pe`, `regions_elf`, `regions_macho`), LIEF, or
labelling differences (see `ledger`).

A region is `(start, end, name, kind)` with `0 <= start < end <= size`; regions nest (a header
field inside a header inside a segment) and the most specific region of a byte is the smallest
one holding it. A symbol is `(start, end, name)` in file offsets.
"""

from __future__ import annotations

import struct
from typing import Any

from reprover.model import Kind

Region = tuple[int, int, str, str]
Symbol = tuple[int, int, str]
RegionMap = dict[str, Any]

MAX_REGIONS = 200_000
MAX_SYMBOLS = 2_000_000


class Reader:
    """Bounds-checked reads of fixed-size integers from a byte string."""

    def __init__(self, data: bytes | memoryview, *, little: bool = True) -> None:
        self.data = data
        self.little = little

    def uint(self, offset: int, size: int) -> int | None:
        """Return the unsigned integer of `size` bytes at `offset`, or None past the end."""
        if offset < 0 or offset + size > len(self.data):
            return None
        return int.from_bytes(self.data[offset : offset + size], "little" if self.little else "big")

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...] | None:
        """Unpack `fmt` (struct syntax without byte order) at `offset`, or None past the end."""
        full = ("<" if self.little else ">") + fmt
        size = struct.calcsize(full)
        if offset < 0 or offset + size > len(self.data):
            return None
        return struct.unpack_from(full, self.data, offset)

    def cstring(self, offset: int, limit: int = 4096) -> str:
        """Return the NUL-terminated string at `offset` (at most `limit` bytes), leniently."""
        if offset < 0 or offset >= len(self.data):
            return ""
        end = bytes(self.data[offset : offset + limit]).find(b"\0")
        raw = bytes(self.data[offset : offset + (limit if end < 0 else end)])
        return raw.decode("utf-8", "replace")


class RegionBuilder:
    """Collect regions, symbols and notes for one file of `size` bytes."""

    def __init__(self, fmt: str, size: int) -> None:
        self.format = fmt
        self.size = size
        self.regions: list[Region] = []
        self.symbols: list[Symbol] = []
        self.notes: list[str] = []
        self._dropped = 0

    def add(self, start: int | None, length: int | None, name: str, kind: Kind) -> bool:
        """Add a region, clipped to the file. Returns whether anything was added.

        A region that starts past the end of the file is dropped with a note (a truncated or
        lying header); one that runs past the end is clipped with a note.
        """
        if start is None or length is None or length <= 0 or start < 0:
            return False
        if start >= self.size:
            self.note(f"{name} starts at 0x{start:x}, past the end of the file (0x{self.size:x})")
            return False
        end = start + length
        if end > self.size:
            self.note(f"{name} runs past the end of the file by {end - self.size} bytes")
            end = self.size
        if len(self.regions) >= MAX_REGIONS:
            self._dropped += 1
            return False
        self.regions.append((start, end, name, kind.value))
        return True

    def fields(self, base: int, table: tuple[tuple[str, int, int, Kind], ...], prefix: str) -> None:
        """Add one region per header field: `table` rows are (name, offset, size, kind)."""
        for field_name, offset, size, kind in table:
            self.add(base + offset, size, f"{prefix}.{field_name}", kind)

    def fill_gaps(self, data: Any, label: str, *, skip: tuple[str, ...] = ()) -> None:
        """Label the bytes no region holds as `label` (`label.padding` when all zero).

        Regions whose name contains one of `skip` (segments, slices) do not count as holding.
        """
        spans = sorted((s, e) for s, e, name, _ in self.regions if not any(k in name for k in skip))
        pos = 0
        for start, end in [*spans, (self.size, self.size)]:
            if start > pos:
                zero = not bytes(data[pos:start]).strip(b"\0")
                kind = Kind.PADDING if zero else Kind.DATA
                self.add(pos, start - pos, label + (".padding" if zero else ""), kind)
            pos = max(pos, end)

    def symbol(self, start: int, length: int, name: str) -> None:
        """Record a symbol at file offset `start` (length 0 when unknown)."""
        if 0 <= start < self.size and name and len(self.symbols) < MAX_SYMBOLS:
            self.symbols.append((start, min(start + max(length, 0), self.size), name))

    def note(self, text: str) -> None:
        """Record something the parser noticed (truncation, inconsistent counts)."""
        if len(self.notes) < 50:
            self.notes.append(text)

    def result(self) -> RegionMap:
        """Return the map as plain data, regions sorted by start then by size (largest first)."""
        if self._dropped:
            self.note(f"{self._dropped} regions beyond the limit of {MAX_REGIONS} were not mapped")
        self.regions.sort(key=lambda r: (r[0], -r[1]))
        self.symbols.sort()
        return {
            "format": self.format,
            "size": self.size,
            "regions": self.regions,
            "symbols": self.symbols,
            "notes": self.notes,
        }
