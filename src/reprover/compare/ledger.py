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
This module chooses the comparison and writes the notes; the scan walks the runs
(`ledger_scan`), the budget bounds and counts them (`ledger_budget`), the labels name them
(`ledger_labels`).
Does not own: which differences a policy allows (`reprover.policy`), hashing, the verdict.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reprover.compare.code import annotate
from reprover.compare.isolation.worker import Unparsed, parse_regions
from reprover.compare.ledger_budget import Budget
from reprover.compare.ledger_labels import Symbols, fine_pieces
from reprover.compare.ledger_scan import Scanner
from reprover.compare.regions.map import RegionMap, Symbol, union
from reprover.compare.regions.structure import Pair, align, describe, translated_exec
from reprover.errors import InputError
from reprover.model import Difference, Kind

DEFAULT_MAX_RUNS = 1000
MAX_ALIGN_NOTES = 40


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
    scan = Scanner(fa.fileno(), fb.fileno(), budget)
    if isinstance(map_a, Unparsed) or isinstance(map_b, Unparsed):
        scan.flat(size_a, size_b, Kind.UNPARSED)
        symbols: list[Symbol] = []
    elif not map_a["regions"] and not map_b["regions"]:
        scan.flat(size_a, size_b, Kind.DATA)
        symbols = []
    elif size_a == size_b or not map_a.get("structures") or not map_b.get("structures"):
        exec_spans = union([*_spans(map_a), *(_spans(map_b) if size_a == size_b else [])])
        scan.fine = fine_pieces(map_a, exec_spans)
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
        scan.fine = fine_pieces(map_a, union([*_spans(map_a), *translated_exec(map_b, pairs)]))
        notes.extend(_alignment_notes(map_a, map_b, pairs))
        scan.structural(pairs, _kinds(map_b))
        symbols = map_a["symbols"]
    notes.extend(budget.summary_notes())
    return Ledger(tuple(budget.differences(fa, fb, Symbols(symbols))), tuple(notes))


def _spans(regions_map: RegionMap) -> list[tuple[int, int]]:
    return [(int(s), int(e)) for s, e in regions_map.get("exec", [])]


def _layout(regions_map: RegionMap) -> list[tuple[int, int]]:
    return [(s, e) for s, e, _ in regions_map.get("structures", [])]


def _kinds(regions_map: RegionMap) -> dict[str, Kind]:
    return {name: Kind(kind) for _, _, name, kind in reversed(regions_map["regions"])}


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
