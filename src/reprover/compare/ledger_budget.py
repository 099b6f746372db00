"""The ledger's bound: at most so many runs listed, the rest counted exactly, in flat memory.

Owns: `Budget`, which keeps the runs the scanner hands it: at most `max_runs` listed per
(region, kind) and `MAX_LISTED` per file, the rest counted (runs and bytes) per region, for
`MAX_SUMMARIES` regions and then per kind in one `file` row, and turns them into `Difference`
rows in file order (each region's count a zero-length row), with their cause.
Does not own: finding the runs (`ledger_scan`) or what a row is called (`ledger_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from reprover.compare.ledger_labels import SHOW_VALUES, Symbols, consequential, values
from reprover.compare.regions.partition import Piece
from reprover.model import Cause, Difference, Kind

MAX_LISTED = 20_000  # runs listed per file, whatever the number of regions
MAX_SUMMARIES = 1000  # summary rows per file; beyond, one row per kind
OVERFLOW = "file"  # the region of the rows that count runs beyond MAX_SUMMARIES regions

Key = tuple[str, Kind]


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
        if not consequential(piece):
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

    def differences(self, fa: BinaryIO, fb: BinaryIO, symbols: Symbols) -> list[Difference]:
        """The listed runs and one summary row per region with unlisted runs, in file order."""
        rows = []
        for item in self.listed:
            piece = item.piece
            detail = item.detail
            if detail is None and item.delta is not None and 0 < item.length <= SHOW_VALUES:
                detail = values(fa, fb, piece, item.start, item.length, item.delta)
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
        self, piece: Piece, start: int, length: int, detail: str | None, symbols: Symbols | None
    ) -> Difference:
        cause = Cause.CONSEQUENCE if self.roots and consequential(piece) else Cause.ROOT
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
