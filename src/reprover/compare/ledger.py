"""The ledger: every differing byte of two files, labelled and classified, in bounded memory.

Owns: turning two files and their region maps (from the isolated `worker`) into `Difference`
values: most specific region, enclosing regions (`context`), nearest symbol (`main+0x9`),
`kind`, and `cause` (a GNU build-id, a Mach-O `LC_UUID`, a PE checksum or Brepro hash and
Mach-O code-directory page hashes follow any other change: they are consequences when
something else differs). Every byte the loader maps executable (the maps' `exec` spans, of
either file) is `code`, whatever its region is called. Which comparison runs:

- same size: offset by offset, so the ledger is exactly the bytes that differ (`cmp -l`);
- different sizes: the top-level structures are aligned by identity (`regions.structure`) and
  each aligned pair is compared byte for byte; bytes on one side only are `only in` runs.

The ledger is bounded (`Budget`): at most `max_runs` runs are listed per region, the rest are
counted exactly (runs and bytes, in C over a 0/1 mask) and listed as one zero-length summary
row per region, so memory stays flat whatever the number of differences. Overlapping-structure
findings of either map are notes starting with `overlapping-structure:`. A parser failure gives
plain runs, `kind: unparsed`, with the reason; it never raises for content. Each `code`
difference then gets its changed instructions (`reprover.compare.code`, decoded in the child).
Does not own: which differences a policy allows (`reprover.policy`), hashing, the verdict.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from reprover.compare.bytes import count_runs, unequal_chunks
from reprover.compare.code import annotate
from reprover.compare.isolation.worker import Unparsed, parse_regions
from reprover.compare.regions.map import RegionMap, Symbol, union
from reprover.compare.regions.partition import UNMAPPED, Piece, merged, pieces
from reprover.compare.regions.structure import Pair, align, describe, display, translated_exec
from reprover.errors import InputError
from reprover.model import Cause, Difference, Kind

CONSEQUENCE_KINDS = frozenset({Kind.BUILD_ID, Kind.CHECKSUM})
CONSEQUENCE_NAMES = re.compile(r".*\.code_directory\.(code_slot\[\d+\]|special_slots)$")
SHOW_VALUES = 16
DEFAULT_MAX_RUNS = 1000
MAX_LISTED = 20_000  # runs listed per file, whatever the number of regions
MAX_SUMMARIES = 1000  # summary rows per file; beyond, one row per kind
OVERFLOW = "file"  # the region of the rows that count runs beyond MAX_SUMMARIES regions
MAX_ALIGN_NOTES = 40

Key = tuple[str, Kind]


@dataclass(frozen=True)
class Ledger:
    """The differences of one file pair and notes on how they were found."""

    differences: tuple[Difference, ...]
    notes: tuple[str, ...]


def explain(
    released: Path,
    rebuilt: Path,
    runs: Sequence[tuple[int, int]] | None = None,
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> Ledger:
    """Label every differing byte of two files with its structure.

    Both files are parsed in the isolated worker. `runs` (from `bytes.diff_runs`) is only a
    shortcut: an empty list means the files are equal. A parser failure on either side gives
    the plain runs with `kind: unparsed` and the reason in the notes.

    Raises:
        InputError: a file cannot be read, or changed while being compared.
    """
    if runs is not None and not runs:
        return Ledger((), ())
    map_a, map_b = parse_regions(released), parse_regions(rebuilt)
    try:
        with released.open("rb") as fa, rebuilt.open("rb") as fb:
            ledger = label(fa, fb, map_a, map_b, max_runs=max_runs)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    if isinstance(map_a, Unparsed) or isinstance(map_b, Unparsed):
        return ledger
    diffs, notes = annotate(released, rebuilt, ledger.differences, (map_a, map_b))
    return Ledger(diffs, (*ledger.notes, *notes))


def label(
    fa: BinaryIO,
    fb: BinaryIO,
    map_a: RegionMap | Unparsed,
    map_b: RegionMap | Unparsed,
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> Ledger:
    """Label the differences of the open files `fa` (released) and `fb` (rebuilt).

    Raises:
        InputError: a file changed size while being compared or cannot be read.
    """
    size_a, size_b = os.fstat(fa.fileno()).st_size, os.fstat(fb.fileno()).st_size
    notes: list[str] = []
    for side, parsed in (("released", map_a), ("rebuilt", map_b)):
        if isinstance(parsed, Unparsed):
            notes.append(f"{side} file not parsed: {parsed.reason}; differences listed as bytes")
        else:
            notes.extend(f"{side} file: {note}" for note in parsed["notes"])
            notes.extend(f"{f} ({side} file)" for f in parsed.get("findings", []))
    budget = Budget(max_runs)
    scan = _Scanner(fa.fileno(), fb.fileno(), budget)
    if isinstance(map_a, Unparsed) or isinstance(map_b, Unparsed):
        scan.flat(size_a, size_b, Kind.UNPARSED)
        symbols: list[Symbol] = []
    elif not map_a["regions"] and not map_b["regions"]:
        scan.flat(size_a, size_b, Kind.DATA)
        symbols = []
    elif size_a == size_b or not map_a.get("structures") or not map_b.get("structures"):
        exec_spans = union([*_spans(map_a), *(_spans(map_b) if size_a == size_b else [])])
        scan.fine = _fine(map_a, exec_spans)
        if _layout(map_a) != _layout(map_b):
            notes.append(
                "section offsets or sizes differ but the files have the same size: compared "
                "offset by offset, so the ledger is exactly the differing bytes"
                if size_a == size_b
                else "the rebuilt file has no structure to align with: compared offset by offset"
            )
            notes.extend(_moved_notes(align(map_a, map_b)))
        scan.offset_by_offset(size_a, size_b)
        symbols = map_a["symbols"]
    else:
        pairs = align(map_a, map_b)
        scan.fine = _fine(map_a, union([*_spans(map_a), *translated_exec(map_b, pairs)]))
        notes.extend(_alignment_notes(map_a, map_b, pairs))
        scan.structural(pairs, _kinds(map_b))
        symbols = map_a["symbols"]
    notes.extend(budget.summary_notes())
    return Ledger(tuple(budget.differences(fa, fb, _Symbols(symbols))), tuple(notes))


def _spans(regions_map: RegionMap) -> list[tuple[int, int]]:
    return [(int(s), int(e)) for s, e in regions_map.get("exec", [])]


def _layout(regions_map: RegionMap) -> list[tuple[int, int]]:
    return [(s, e) for s, e, _ in regions_map.get("structures", [])]


def _kinds(regions_map: RegionMap) -> dict[str, Kind]:
    return {name: Kind(kind) for _, _, name, kind in reversed(regions_map["regions"])}


def _fine(regions_map: RegionMap, exec_spans: list[tuple[int, int]]) -> list[Piece]:
    """The map's pieces, cut at executable spans; executable parts are `code`."""
    out: list[Piece] = []
    starts = [s for s, _ in exec_spans]
    for piece in merged(pieces(regions_map["regions"], regions_map["size"])):
        pos = piece.start
        i = max(bisect.bisect_right(starts, pos) - 1, 0)
        while pos < piece.end:
            span = exec_spans[i] if i < len(exec_spans) else None
            if span is None or span[0] >= piece.end:
                out.append(replace(piece, start=pos))
                break
            if span[1] <= pos:
                i += 1
                continue
            if span[0] > pos:
                out.append(replace(piece, start=pos, end=span[0]))
                pos = span[0]
            end = min(span[1], piece.end)
            out.append(replace(piece, start=pos, end=end, kind=Kind.CODE))
            pos = end
    return out


def _moved(pairs: list[Pair]) -> list[Pair]:
    return [
        p
        for p in pairs
        if p.a_start is None or p.b_start is None or (p.a_start, p.a_end) != (p.b_start, p.b_end)
    ]


def _moved_notes(pairs: list[Pair]) -> list[str]:
    """One note per structure that moved, changed size or is on one side only (bounded)."""
    moved = _moved(pairs)
    notes = [describe(p) for p in moved[:MAX_ALIGN_NOTES]]
    if len(moved) > MAX_ALIGN_NOTES:
        notes.append(f"... and {len(moved) - MAX_ALIGN_NOTES} more structures moved or resized")
    return notes


def _alignment_notes(map_a: RegionMap, map_b: RegionMap, pairs: list[Pair]) -> list[str]:
    moved = _moved(pairs)
    return [
        f"sizes differ ({map_a['format']} {map_a['size']} bytes, {map_b['format']} "
        f"{map_b['size']} bytes): top-level structures aligned by identity and compared byte "
        f"for byte; offsets are in the released file; {len(pairs) - len(moved)} structures at "
        f"the same place, {len(moved)} moved, resized or on one side only",
        *_moved_notes(pairs),
    ]


@dataclass
class _Listed:
    piece: Piece
    start: int
    length: int
    delta: int | None  # rebuilt offset - released offset, None when the bytes are one-sided
    detail: str | None


@dataclass
class _Omitted:
    piece: Piece
    runs: int
    nbytes: int
    first: int
    end: int
    regions: set[str] | None = None  # the regions an overflow row stands for


class Budget:
    """At most `max_runs` runs listed per (region, kind), `MAX_LISTED` per file; the rest
    counted exactly, per region (`MAX_SUMMARIES` of them, then per kind)."""

    def __init__(self, max_runs: int) -> None:
        self.max_runs = max(max_runs, 1)
        self.listed: list[_Listed] = []
        self.per_key: dict[Key, int] = {}
        self.omitted: dict[Key, _Omitted] = {}
        self.roots = False

    def full(self, key: Key) -> bool:
        """Whether runs of `key` are only counted from now on."""
        return self.per_key.get(key, 0) >= self.max_runs or len(self.listed) >= MAX_LISTED

    def seen(self, piece: Piece) -> None:
        if not _consequential(piece):
            self.roots = True

    def extends(self, piece: Piece, start: int, delta: int | None) -> bool:
        """Whether a run at `start` continues the last listed run (same piece, same shift)."""
        if not self.listed:
            return False
        last = self.listed[-1]
        return (
            last.piece.name == piece.name
            and last.start + last.length == start
            and last.delta == delta
            and last.detail is None
        )

    def extend(self, length: int) -> None:
        self.listed[-1].length += length

    def keep(
        self, piece: Piece, start: int, length: int, delta: int | None, detail: str | None = None
    ) -> None:
        key = (piece.name, piece.kind)
        self.per_key[key] = self.per_key.get(key, 0) + 1
        self.listed.append(_Listed(piece, start, length, delta, detail))
        self.seen(piece)

    def count(self, piece: Piece, runs: int, nbytes: int, first: int, end: int) -> None:
        """Count `runs` runs (`nbytes` bytes) of `piece` between `first` and `end`, unlisted."""
        if not nbytes and not runs:
            return
        self.seen(piece)
        name, key = piece.name, (piece.name, piece.kind)
        overflow = key not in self.omitted and len(self.omitted) >= MAX_SUMMARIES
        if overflow:
            key = (OVERFLOW, piece.kind)
            piece = Piece(first, end, OVERFLOW, piece.kind, ())
        entry = self.omitted.get(key)
        if entry is None:
            entry = _Omitted(piece, 0, 0, first, end, set() if overflow else None)
            self.omitted[key] = entry
        if entry.regions is not None:
            entry.regions.add(name)
        entry.runs += runs
        entry.nbytes += nbytes
        entry.first, entry.end = min(entry.first, first), max(entry.end, end)

    def summary_notes(self) -> list[str]:
        if not self.omitted:
            return []
        runs = sum(o.runs for o in self.omitted.values())
        nbytes = sum(o.nbytes for o in self.omitted.values())
        return [
            f"ledger bounded: {runs} more differing runs ({nbytes} bytes) in "
            f"{len(self.omitted)} regions are counted, not listed (at most {self.max_runs} runs "
            f"per region and {MAX_LISTED} per file are listed); each region's count is a "
            "zero-length row"
        ]

    def differences(self, fa: BinaryIO, fb: BinaryIO, symbols: _Symbols) -> list[Difference]:
        """The listed runs and one summary row per region with unlisted runs, in file order."""
        rows = []
        for item in self.listed:
            piece = item.piece
            detail = item.detail
            if detail is None and item.delta is not None and 0 < item.length <= SHOW_VALUES:
                detail = _values(fa, fb, piece, item.start, item.length, item.delta)
            rows.append(self._row(piece, item.start, item.length, detail, symbols))
        for entry in self.omitted.values():
            where = f"from 0x{entry.first:x} to 0x{entry.end:x}"
            many = " here" if entry.regions is None else f" in {len(entry.regions)} other regions"
            detail = (
                f"{entry.runs} more differing runs ({entry.nbytes} bytes){many}, {where}, "
                f"counted, not listed (at most {self.max_runs} runs are listed per region)"
            )
            rows.append(self._row(entry.piece, entry.first, 0, detail, None))
        rows.sort(key=lambda d: (d.offset, d.length == 0))
        return rows

    def _row(
        self, piece: Piece, start: int, length: int, detail: str | None, symbols: _Symbols | None
    ) -> Difference:
        cause = Cause.CONSEQUENCE if self.roots and _consequential(piece) else Cause.ROOT
        return Difference(
            offset=start,
            length=length,
            region=piece.name,
            kind=piece.kind,
            cause=cause,
            context=piece.context,
            symbol=symbols.near(piece.name, piece.kind, start) if symbols else None,
            detail=detail,
        )


class _Scanner:
    """Walk unequal chunks of two files and hand each run to the budget, piece by piece."""

    def __init__(self, fa: int, fb: int, budget: Budget) -> None:
        self.fa, self.fb, self.budget = fa, fb, budget
        self.fine: list[Piece] = []
        self._starts: list[int] | None = None

    def flat(self, size_a: int, size_b: int, kind: Kind) -> None:
        """No usable map: one piece for the whole file."""
        self.fine = [Piece(0, max(size_a, 1), UNMAPPED, kind, ())]
        self.offset_by_offset(size_a, size_b)

    def offset_by_offset(self, size_a: int, size_b: int) -> None:
        common = min(size_a, size_b)
        self.compare(0, 0, common)
        if size_a > size_b:
            detail = f"only in the released file (the rebuilt file has {size_b} bytes)"
            self.one_sided(common, size_a, detail)
        elif size_b > size_a:
            detail = f"only in the rebuilt file: {size_b - size_a} bytes at 0x{size_a:x}"
            self.rebuilt_only(size_a, self._piece_at(max(size_a - 1, 0)), detail)

    def structural(self, pairs: list[Pair], kinds_b: dict[str, Kind]) -> None:
        last_end = 0
        for pair in pairs:
            if pair.a_start is None or pair.a_end is None:
                continue
            la = pair.a_end - pair.a_start
            last_end = pair.a_end
            if pair.b_start is None or pair.b_end is None:
                self.one_sided(pair.a_start, pair.a_end, "only in the released file")
                continue
            lb = pair.b_end - pair.b_start
            common = min(la, lb)
            self.compare(pair.a_start, pair.b_start, common)
            if la == lb:
                continue
            change = _size_change(pair.name, la, lb)
            if la > lb:
                detail = f"{change}: only in the released file"
                self.one_sided(pair.a_start + lb, pair.a_end, detail)
            else:
                at = pair.a_start + la
                piece = self._piece_at(max(at - 1, pair.a_start))
                where = f"0x{pair.b_start + la:x}"
                self.rebuilt_only(at, piece, f"{change}: {lb - la} bytes at {where} only in the "
                                  "rebuilt file")  # fmt: skip
        for pair in pairs:
            if pair.a_start is None and pair.b_start is not None and pair.b_end is not None:
                kind = kinds_b.get(pair.name, Kind.DATA)
                piece = Piece(last_end, last_end, pair.name, kind, ())
                length = pair.b_end - pair.b_start
                detail = f"only in the rebuilt file: {length} bytes at 0x{pair.b_start:x}"
                self.rebuilt_only(last_end, piece, detail)

    def compare(self, a_off: int, b_off: int, length: int) -> None:
        """Hand every differing run of two equal-length ranges to the budget."""
        delta = b_off - a_off
        prev_end, prev_tail = -1, 0
        for rel, mask in unequal_chunks(self.fa, self.fb, a_off, b_off, length):
            base = a_off + rel
            carry = prev_end == base and prev_tail == 1
            for piece in self._pieces(base, base + len(mask)):
                lo, hi = max(piece.start, base) - base, min(piece.end, base + len(mask)) - base
                if mask.find(1, lo, hi) >= 0:
                    continues = carry and lo == 0 and piece.start < base
                    self._part(piece, base, mask, (lo, hi), continues, delta)
            prev_end, prev_tail = base + len(mask), mask[-1]

    def _part(  # noqa: PLR0917 - the state of one piece in one chunk
        self,
        piece: Piece,
        base: int,
        mask: bytes,
        bounds: tuple[int, int],
        continues: bool,
        delta: int,
    ) -> None:
        """List (or, once the region is full, count) the runs of mask[lo:hi] for `piece`."""
        budget, (lo, hi) = self.budget, bounds
        pos, key = lo, (piece.name, piece.kind)
        if continues and mask[lo] and budget.extends(piece, base + lo, delta):
            end = _run_end(mask, lo, hi)
            budget.extend(end - lo)
            pos, continues = end, False
        while pos < hi and not budget.full(key):
            start = mask.find(1, pos, hi)
            if start < 0:
                return
            end = _run_end(mask, start, hi)
            if start == lo and continues:  # continues a run already counted
                budget.count(piece, 0, end - start, base + start, base + end)
            else:
                budget.keep(piece, base + start, end - start, delta)
            pos, continues = end, False
        if pos < hi:
            first = mask.find(1, pos, hi)
            if first < 0:
                return
            last = mask.rfind(1, pos, hi)
            runs, nbytes = count_runs(mask, pos, hi, continues=continues)
            budget.count(piece, runs, nbytes, base + first, base + last + 1)

    def one_sided(self, start: int, end: int, detail: str) -> None:
        """Every byte of [start, end) of the released file is only there: one run per piece."""
        for piece in self._pieces(start, end):
            lo, hi = max(piece.start, start), min(piece.end, end)
            if self.budget.full((piece.name, piece.kind)):
                self.budget.count(piece, 1, hi - lo, lo, hi)
            else:
                self.budget.keep(piece, lo, hi - lo, None, detail)

    def rebuilt_only(self, at: int, piece: Piece, detail: str) -> None:
        if self.budget.full((piece.name, piece.kind)):
            self.budget.count(piece, 1, 0, at, at)
        else:
            self.budget.keep(replace(piece, start=at, end=at), at, 0, None, detail)

    def _pieces(self, start: int, end: int) -> list[Piece]:
        if self._starts is None:
            self._starts = [p.start for p in self.fine]
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self.fine) and self.fine[i].start < end:
            if self.fine[i].end > start:
                out.append(self.fine[i])
            i += 1
        if not out:  # bytes past every piece (a map shorter than its file)
            out.append(Piece(start, end, UNMAPPED, Kind.DATA, ()))
        return out

    def _piece_at(self, offset: int) -> Piece:
        return self._pieces(offset, offset + 1)[0]


def _run_end(mask: bytes, start: int, hi: int) -> int:
    end = mask.find(0, start, hi)
    return hi if end < 0 else end


def _size_change(name: str, la: int, lb: int) -> str:
    if ".gap[" in name:
        what = "longer" if lb > la else "shorter"
        return f"{display(name)} is {abs(lb - la)} bytes {what} in the rebuilt file ({la} -> {lb})"
    verb = "grew" if lb > la else "shrank"
    return f"{display(name)} {verb} by {abs(lb - la)} bytes ({la} -> {lb})"


def _consequential(piece: Piece) -> bool:
    return (
        piece.kind in CONSEQUENCE_KINDS
        or piece.name.endswith(("pe.debug.repro", ".LC_UUID.uuid"))
        or CONSEQUENCE_NAMES.match(piece.name) is not None
    )


def _values(  # noqa: PLR0917 - a run and where its counterpart is
    fa: BinaryIO, fb: BinaryIO, piece: Piece, start: int, length: int, delta: int
) -> str | None:
    """Old -> new value of a small run, or of the whole small field holding it."""
    end = start + length
    whole = 0 < piece.leaf_end - piece.leaf_start <= SHOW_VALUES
    if whole and piece.leaf_start <= start and end <= piece.leaf_end:
        start, end = piece.leaf_start, piece.leaf_end
    a = os.pread(fa.fileno(), end - start, start)
    b = os.pread(fb.fileno(), end - start, start + delta)
    if not a or not b or len(a) != len(b):
        return None
    if piece.kind is Kind.TIMESTAMP and (start, end) == (piece.leaf_start, piece.leaf_end):
        return f"{_time(a)} -> {_time(b)}"
    return f"{a.hex()} -> {b.hex()}"


def _time(raw: bytes) -> str:
    value = int.from_bytes(raw, "little")
    if value >= 1 << 40:
        return f"0x{value:x}"
    moment = datetime.fromtimestamp(value, tz=timezone.utc)
    return f"{value} ({moment:%Y-%m-%dT%H:%M:%SZ})"


class _Symbols:
    """The symbol whose real extent (ELF st_size, PE .pdata, Mach-O function starts) holds a
    byte; a symbol of unknown extent names only its first byte."""

    def __init__(self, symbols: list[Symbol]) -> None:
        self.symbols = symbols
        self.starts = [s[0] for s in symbols]

    def near(self, region: str, kind: Kind, offset: int) -> str | None:
        if kind not in (Kind.CODE, Kind.DATA) or region == UNMAPPED:
            return None
        i = bisect.bisect_right(self.starts, offset) - 1
        for start, end, name in reversed(self.symbols[max(i - 7, 0) : i + 1]):
            if offset == start:
                return name
            if start < offset < end:  # inside the symbol's real extent
                return f"{name}+0x{offset - start:x}"
        return None
