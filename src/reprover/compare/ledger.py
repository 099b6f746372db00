"""The ledger: every differing byte of two files, labelled and classified.

Owns: turning byte runs plus the two files' region maps (from the isolated `worker`) into
`Difference` values: most specific region, enclosing regions (`context`), nearest symbol
(`main+0x9`), `kind`, and `cause` (a GNU build-id, a Mach-O `LC_UUID`, a PE checksum or Brepro
hash and Mach-O code-directory page hashes follow any other change: they are consequences when
something else differs); choosing between the byte-level path (same layout) and the structural
path (`structure`, when sizes or layouts differ); the fallback to plain byte runs, recorded as
`kind: unparsed` with the reason, when a parser failed.
Does not own: which differences a policy allows (`reprover.policy`), hashing, the verdict.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from reprover.compare.isolation.worker import Unparsed, parse_regions
from reprover.compare.regions.map import RegionMap, Symbol
from reprover.compare.regions.partition import UNMAPPED, Piece, merged, pieces
from reprover.compare.regions.structure import compare_structure
from reprover.errors import InputError
from reprover.model import Cause, Difference, Kind

CONSEQUENCE_KINDS = frozenset({Kind.BUILD_ID, Kind.CHECKSUM})
CONSEQUENCE_NAMES = re.compile(r".*\.code_directory\.(code_slot\[\d+\]|special_slots)$")
SHOW_VALUES = 16
SYMBOL_REACH = 1 << 16


@dataclass(frozen=True)
class Ledger:
    """The differences of one file pair and notes on how they were found."""

    differences: tuple[Difference, ...]
    notes: tuple[str, ...]


def explain(released: Path, rebuilt: Path, runs: Sequence[tuple[int, int]]) -> Ledger:
    """Label the differing `runs` of two files (from `bytes.diff_runs`) with their structure.

    Both files are parsed in the isolated worker. A parser failure on either side gives the
    plain runs with `kind: unparsed` and the reason in the notes; it never raises for content.

    Raises:
        InputError: a file cannot be read.
    """
    if not runs:
        return Ledger((), ())
    map_a, map_b = parse_regions(released), parse_regions(rebuilt)
    try:
        with released.open("rb") as fa, rebuilt.open("rb") as fb:
            return label(fa, fb, runs, map_a, map_b)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc


def label(
    fa: BinaryIO,
    fb: BinaryIO,
    runs: Sequence[tuple[int, int]],
    map_a: RegionMap | Unparsed,
    map_b: RegionMap | Unparsed,
) -> Ledger:
    """Label `runs` between the open files `fa` (released) and `fb` (rebuilt) given their maps."""
    notes: list[str] = []
    for side, parsed in (("released", map_a), ("rebuilt", map_b)):
        if isinstance(parsed, Unparsed):
            notes.append(f"{side} file not parsed: {parsed.reason}; differences listed as bytes")
        else:
            notes.extend(f"{side} file: {note}" for note in parsed["notes"])
    if isinstance(map_a, Unparsed) or isinstance(map_b, Unparsed):
        diffs = [Difference(o, n, UNMAPPED, Kind.UNPARSED) for o, n in runs]
        return Ledger(tuple(diffs), tuple(notes))
    if not map_a["regions"] and not map_b["regions"]:
        return Ledger(tuple(Difference(o, n, UNMAPPED, Kind.DATA) for o, n in runs), tuple(notes))
    same = map_a["size"] == map_b["size"] and map_a["regions"] == map_b["regions"]
    if same:
        found: list[tuple[Piece, str | None]] = [
            (p, None) for p in merged(pieces(map_a["regions"], map_a["size"], runs))
        ]
    else:
        notes.append(
            f"layouts differ ({map_a['format']} {map_a['size']} bytes, {map_b['format']} "
            f"{map_b['size']} bytes): compared by structure, offsets are in the released file"
        )
        found = [
            (replace(c.piece, start=c.offset, end=c.offset + c.length), c.detail)
            for c in compare_structure(fa, fb, map_a, map_b)
        ]
    symbols = _Symbols(map_a["symbols"])
    roots = any(not _consequential(p) for p, _ in found)
    diffs = []
    for piece, note in found:
        length = piece.end - piece.start
        detail = note
        if detail is None and same and 0 < length <= SHOW_VALUES:
            detail = _values(fa, fb, piece)
        cause = Cause.CONSEQUENCE if roots and _consequential(piece) else Cause.ROOT
        diffs.append(
            Difference(
                offset=piece.start,
                length=length,
                region=piece.name,
                kind=piece.kind,
                cause=cause,
                context=piece.context,
                symbol=symbols.near(piece),
                detail=detail,
            )
        )
    return Ledger(tuple(diffs), tuple(notes))


def _consequential(piece: Piece) -> bool:
    return (
        piece.kind in CONSEQUENCE_KINDS
        or piece.name.endswith(("pe.debug.repro", ".LC_UUID.uuid"))
        or CONSEQUENCE_NAMES.match(piece.name) is not None
    )


def _values(fa: BinaryIO, fb: BinaryIO, piece: Piece) -> str | None:
    """Old -> new value of a small field (the whole field), same layout on both sides."""
    start, end = piece.start, piece.end
    if 0 < piece.leaf_end - piece.leaf_start <= SHOW_VALUES:
        start, end = piece.leaf_start, piece.leaf_end
    fa.seek(start)
    fb.seek(start)
    a, b = fa.read(end - start), fb.read(end - start)
    if not a or not b:
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
    """Nearest preceding symbol within the same section."""

    def __init__(self, symbols: list[Symbol]) -> None:
        self.symbols = symbols
        self.starts = [s[0] for s in symbols]

    def near(self, piece: Piece) -> str | None:
        if piece.kind not in (Kind.CODE, Kind.DATA) or piece.name == UNMAPPED:
            return None
        i = bisect.bisect_right(self.starts, piece.start) - 1
        if i < 0:
            return None
        start, end, name = self.symbols[i]
        if end > start and piece.start >= end:
            return None
        if piece.start - start > SYMBOL_REACH:
            return None
        return f"{name}+0x{piece.start - start:x}" if piece.start > start else name
