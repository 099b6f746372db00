"""Plain-data region maps built inside the parsing worker.

Owns: `RegionBuilder`, which collects labelled byte ranges (regions), symbols and notes for one
file and turns them into plain data (`RegionMap`: a dict of lists of tuples) that crosses the
process boundary; `Reader`, bounds-checked little helpers to read fixed-layout header fields.
Does not own: any format knowledge (see `regions_pe`, `regions_elf`, `regions_macho`), LIEF, or
labelling differences (see `ledger`).

A region is `(start, end, name, kind)` with `0 <= start < end <= size`; regions nest (a header
field inside a header inside a segment) and the most specific region of a byte is the smallest
one holding it (segments and fat slices are context only, see `partition`). A symbol is
`(start, end, name)` in file offsets.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

from reprover.model import Kind

Region = tuple[int, int, str, str]
Symbol = tuple[int, int, str]
RegionMap = dict[str, Any]

MAX_REGIONS = 200_000
MAX_SYMBOLS = 2_000_000
MAX_NOTES = 50
OVERLAPPING = "overlapping-structure:"
SELF = "<self>"
ARCHES = ("x86-64", "x86", "arm64", "arm", "thumb")  # what `code_section` may name


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
    """Collect regions, structures, executable spans, symbols and notes for one file.

    Every label comes from the file's structure (headers, tables, sections, segments, load
    commands), never from the values of the bytes it labels. Three extra lists feed the checks
    in `result`:

    - *structures* (`structure`): the top-level pieces of the file (headers, header tables,
      sections, symbol tables, load commands, the certificate table...). Bytes between them
      become gap regions `<format>.gap[after X]`, whatever they contain. The structural
      comparison aligns two files by these.
    - *executable spans* (`executable`, minus `not_executable`): every byte the loader maps
      executable. The ledger classifies them `code`, and no policy rule covers `code`.
    - *grants* (`grant`): regions that some policy rule may cover. `result` keeps a grant only
      when it lies inside its owner structure and touches no executable byte, and records
      every other case as an `overlapping-structure` finding (the grant is dropped).
    """

    def __init__(self, fmt: str, size: int) -> None:
        self.format = fmt
        self.size = size
        self.regions: list[Region] = []
        self.symbols: list[Symbol] = []
        self.notes: list[str] = []
        self.findings: list[str] = []
        self.structures: list[tuple[int, int, str]] = []
        self.exec_spans: list[tuple[int, int]] = []
        self.exec_sections: list[tuple[int, int]] = []
        self.plain_spans: list[tuple[int, int]] = []
        self.code: list[tuple[int, int, str, int]] = []  # (start, end, arch, address)
        self.grants: list[tuple[int, str | None]] = []  # (region index, owner structure)
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

    def structure(self, start: int | None, length: int | None, name: str, kind: Kind) -> bool:
        """Add a region that is a top-level structure of the file (see the class docstring)."""
        if not self.add(start, length, name, kind):
            return False
        begin, end = self.regions[-1][0], self.regions[-1][1]
        self.structures.append((begin, end, name))
        return True

    def grant(
        self, start: int | None, length: int | None, name: str, kind: Kind, owner: str | None
    ) -> bool:
        """Add a region a policy rule may cover; `owner` is the structure that must hold it.

        `owner=SELF` means the region is itself a structure (a debug section); `owner=None`
        that no single structure holds it (the grant is refused with a finding).
        """
        if not self.add(start, length, name, kind):
            return False
        if owner == SELF:
            self.structures.append((self.regions[-1][0], self.regions[-1][1], name))
        self.grants.append((len(self.regions) - 1, owner))
        return True

    def executable(self, start: int, length: int, *, section: bool = False) -> None:
        """Record that the loader maps [start, start+length) executable.

        A segment's span (`section=False`) loses the headers `not_executable` names; an
        executable section's bytes are code wherever they lie.
        """
        if length > 0 and start >= 0:
            span = (start, min(start + length, self.size))
            (self.exec_sections if section else self.exec_spans).append(span)

    def code_section(self, start: int, length: int, arch: str, address: int) -> None:
        """Record an executable section for the disassembler: its instruction set (`ARCHES`,
        or "" when unknown) and the address its first byte is loaded at."""
        if length > 0 and 0 <= start < self.size and len(self.code) < MAX_REGIONS:
            arch = arch if arch in ARCHES else ""
            self.code.append((start, min(start + length, self.size), arch, address % (1 << 64)))

    def not_executable(self, start: int, length: int) -> None:
        """Exclude the file header, program headers or load commands from `executable` spans."""
        if length > 0 and start >= 0:
            self.plain_spans.append((start, min(start + length, self.size)))

    def fields(self, base: int, table: tuple[tuple[str, int, int, Kind], ...], prefix: str) -> None:
        """Add one region per header field: `table` rows are (name, offset, size, kind)."""
        for field_name, offset, size, kind in table:
            self.add(base + offset, size, f"{prefix}.{field_name}", kind)

    def symbol(self, start: int, length: int, name: str) -> None:
        """Record a symbol at file offset `start` (length 0 when unknown)."""
        if 0 <= start < self.size and name and len(self.symbols) < MAX_SYMBOLS:
            self.symbols.append((start, min(start + max(length, 0), self.size), name))

    def note(self, text: str) -> None:
        """Record something the parser noticed (truncation, inconsistent counts)."""
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def finding(self, text: str) -> None:
        """Record an `overlapping-structure` finding (it makes the artifact fail)."""
        if len(self.findings) < MAX_NOTES:
            self.findings.append(f"{OVERLAPPING} {text}")

    def result(self) -> RegionMap:
        """Check structures and grants, add gap regions, and return the map as plain data.

        Regions are sorted by start then by size (largest first); `exec` holds the merged
        executable spans; `structures` the top-level structures (gaps included) as
        (start, end, name), sorted; `findings` the `overlapping-structure` findings.
        """
        if self._dropped:
            self.note(f"{self._dropped} regions beyond the limit of {MAX_REGIONS} were not mapped")
        segments = subtract(union(self.exec_spans), union(self.plain_spans))
        exec_spans = union(segments + self.exec_sections)
        overlapping = self._check_structures()
        self._check_grants(exec_spans, overlapping)
        self._gaps(exec_spans)
        self.regions.sort(key=lambda r: (r[0], -r[1]))
        self.symbols.sort()
        return {
            "format": self.format,
            "size": self.size,
            "regions": self.regions,
            "symbols": self.symbols,
            "notes": self.notes,
            "exec": [list(s) for s in exec_spans],
            "structures": sorted(self.structures),
            "findings": self.findings,
            "code": [list(c) for c in sorted(self.code)],
        }

    def _check_structures(self) -> set[str]:
        """Find top-level structures that overlap each other; return their names."""
        bad: set[str] = set()
        reach: tuple[int, str] | None = None  # (end, name) of the structure reaching furthest
        for start, end, name in sorted(self.structures):
            if reach is not None and start < reach[0]:
                where = f"0x{start:x}-0x{min(end, reach[0]):x}"
                self.finding(f"{reach[1]} and {name} overlap ({where})")
                bad.update((name, reach[1]))
            if reach is None or end > reach[0]:
                reach = (end, name)
        return bad

    def _check_grants(self, exec_spans: list[tuple[int, int]], overlapping: set[str]) -> None:
        owners = {name: (s, e) for s, e, name in self.structures}
        drop: set[int] = set()
        for index, owner in self.grants:
            start, end, name, _ = self.regions[index]
            hit = first_overlap(exec_spans, start, end)
            if hit is not None:
                self.finding(
                    f"{name} (0x{start:x}-0x{end:x}) lies in executable bytes (0x{hit[0]:x}-"
                    f"0x{hit[1]:x}); no rule covers it"
                )
            elif (name if owner == SELF else owner) in overlapping:
                self.finding(f"{name} lies in a structure that overlaps another; not granted")
            elif owner is None:
                self.finding(f"{name} (0x{start:x}-0x{end:x}) lies in no single structure")
            elif owner != SELF and not (
                owner in owners and owners[owner][0] <= start and end <= owners[owner][1]
            ):
                self.finding(f"{name} (0x{start:x}-0x{end:x}) is not inside {owner}; not granted")
            else:
                continue
            drop.add(index)
        if drop:
            dropped = {self.regions[i][2] for i in drop}
            self.regions = [r for i, r in enumerate(self.regions) if i not in drop]
            self.structures = [s for s in self.structures if s[2] not in dropped]

    def _gaps(self, exec_spans: list[tuple[int, int]]) -> None:
        """Add a region (and structure) for every byte range no structure holds."""
        if not self.structures:
            return
        pos, last = 0, "start of file"
        found = []
        for start, end, name in sorted(self.structures):
            if start > pos:
                found.append((pos, start, last))
            if end > pos:
                pos, last = end, name
        if self.size > pos:
            found.append((pos, self.size, last))
        prefix = self.format.split("-")[0]
        for start, end, after in found:
            label = f"{prefix}.gap[after {short(after)}]"
            kind = Kind.CODE if first_overlap(exec_spans, start, end) else Kind.DATA
            if self.add(start, end - start, label, kind):
                self.structures.append((start, end, label))


def short(name: str) -> str:
    """`elf.section[.text]` -> `.text`; other names unchanged (for gap labels)."""
    if name.endswith("]") and ".section[" in name:
        return name[name.index(".section[") + 9 : -1]
    return name


def union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching spans; return them sorted."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` minus `holes` (both sorted and merged)."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        pos = start
        for h_start, h_end in holes:
            if h_end <= pos or h_start >= end:
                continue
            if h_start > pos:
                out.append((pos, h_start))
            pos = max(pos, h_end)
        if pos < end:
            out.append((pos, end))
    return out


def first_overlap(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The first of the sorted, disjoint `spans` that meets [start, end), or None."""
    i = bisect.bisect_right(spans, (start, 1 << 62)) - 1
    for k in (i, i + 1):
        if 0 <= k < len(spans) and spans[k][0] < end and start < spans[k][1]:
            return spans[k]
    return None
