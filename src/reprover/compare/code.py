"""Code shown as code: the changed instructions of each `code` difference, before and after.

Owns: choosing which differences are disassembled (kind `code`, a listed run with bytes on
both sides, in an executable section whose instruction set is known; at most `MAX_DIFFS` per
file), where each linear sweep starts (the enclosing function's start when its real extent is
known and within `MAX_BACK` bytes, else the section's start when within `NEAR` bytes, else a
few bytes before the run on x86, or the instruction boundary on fixed-width sets), and checking
the reply of the limited child that decodes them (`isolation.disassemble`, capstone).
Does not own: the decoding itself (only in the child), finding differences (`ledger`).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprover.compare.isolation.worker import Unparsed, ask
from reprover.compare.regions.map import RegionMap
from reprover.compare.regions.structure import align
from reprover.model import Difference, Disassembly, Kind

MAX_DIFFS = 50  # differences disassembled per file
MAX_BACK = 4096  # furthest a sweep starts before the changed bytes (function start)
NEAR = 256  # a section start this close is a sweep start
X86_BACK = 32  # without a known boundary, x86 resynchronizes within a few instructions
TAIL = 16  # bytes decoded past the changed ones (longest x86 instruction: 15)
MAX_LINE = 200
MAX_LINES = 9
WIDTH = {"arm64": 4, "arm": 4, "thumb": 2}


def annotate(
    released: Path,
    rebuilt: Path,
    differences: tuple[Difference, ...],
    maps: tuple[RegionMap, RegionMap],
) -> tuple[tuple[Difference, ...], list[str]]:
    """Return `differences` with `disassembly` set on code differences, and notes.

    Never raises for content: a failed child gives a note on each difference it would have
    decoded.
    """
    map_a, map_b = maps
    shift = _shifts(map_a, map_b)
    sections_a = [tuple(c) for c in map_a.get("code", [])]
    symbols = [s for s in map_a.get("symbols", []) if s[1] > s[0]]
    jobs: list[dict[str, Any]] = []
    picked: list[int] = []
    out = list(differences)
    skipped = 0
    for index, diff in enumerate(differences):
        if diff.kind is not Kind.CODE or diff.length <= 0 or diff.allowed:
            continue
        if len(picked) >= MAX_DIFFS:
            skipped += 1
            continue
        section = _holding(sections_a, diff.offset)
        delta = shift(diff.offset, diff.length)
        note = None
        if section is None:
            note = "not disassembled: executable bytes in no code section (data, unwind tables)"
        elif not section[2]:
            note = "not disassembled: unknown instruction set"
        elif delta is None or (diff.detail or "").startswith("only in"):
            note = "not disassembled: the bytes have no counterpart at a known offset"
        if note is not None:
            out[index] = replace(diff, disassembly=Disassembly(note=note))
            continue
        assert section is not None and delta is not None  # noqa: S101 - narrowed above
        jobs.append(_job(diff, section, symbols, delta))
        picked.append(index)
    notes = []
    if skipped:
        notes.append(
            f"disassembly shown for the first {MAX_DIFFS} code differences; {skipped} more "
            "are not disassembled"
        )
    if not jobs:
        return tuple(out), notes
    request = {"op": "disassemble", "released": str(released.resolve()),
               "rebuilt": str(rebuilt.resolve()), "jobs": jobs}  # fmt: skip
    results = _results(ask(request), len(jobs))
    for index, result in zip(picked, results, strict=True):
        out[index] = replace(out[index], disassembly=result)
    return tuple(out), notes


def _shifts(map_a: RegionMap, map_b: RegionMap) -> Callable[[int, int], int | None]:
    """A function (offset, length) -> rebuilt offset minus released offset, or None when the
    bytes have no counterpart; the ledger's own choice of comparison (`ledger.label`)."""
    size_b = int(map_b["size"])
    if map_a["size"] == size_b or not map_a.get("structures") or not map_b.get("structures"):
        return lambda offset, length: 0 if offset + length <= size_b else None
    spans = [
        (p.a_start, p.a_end or 0, p.b_start, p.b_end or 0)
        for p in align(map_a, map_b)
        if p.a_start is not None and p.b_start is not None
    ]

    def shift(offset: int, length: int) -> int | None:
        for a_start, a_end, b_start, b_end in spans:
            if a_start <= offset and offset + length <= a_end:
                delta = b_start - a_start
                return delta if offset + length + delta <= b_end else None
        return None

    return shift


def _holding(sections: list[Any], offset: int) -> tuple[int, int, str, int] | None:
    i = bisect.bisect_right(sections, (offset, 1 << 62, "~", 0)) - 1
    if i >= 0 and sections[i][0] <= offset < sections[i][1]:
        s = sections[i]
        return int(s[0]), int(s[1]), str(s[2]), int(s[3])
    return None


def _job(
    diff: Difference, section: tuple[int, int, str, int], symbols: list[Any], delta: int
) -> dict[str, Any]:
    start_sec, end_sec, arch, address = section
    lo, hi = diff.offset, diff.offset + diff.length
    start = _sweep_start(lo, start_sec, arch, symbols)
    end = min(hi + TAIL, end_sec)
    at = address + start - start_sec
    return {
        "arch": arch,
        "a": [start, end, lo, hi, at],
        "b": [start + delta, end + delta, lo + delta, hi + delta, at],
    }


def _sweep_start(offset: int, section_start: int, arch: str, symbols: list[Any]) -> int:
    i = bisect.bisect_right(symbols, (offset, 1 << 62, "")) - 1
    for start, end, _ in reversed(symbols[max(i - 7, 0) : i + 1]):
        if start <= offset < end and offset - start <= MAX_BACK and start >= section_start:
            return int(start)
    if offset - section_start <= NEAR:
        return section_start
    width = WIDTH.get(arch)
    if width is None:
        return offset - X86_BACK
    return offset - (offset - section_start) % width


def _results(raw: bytes | Unparsed, count: int) -> list[Disassembly]:
    """Check the child's reply field by field; any fault becomes a note on every job."""
    if isinstance(raw, Unparsed):
        return [Disassembly(note=f"not disassembled: {raw.reason}")] * count
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return [Disassembly(note=f"not disassembled: {data['error'][:MAX_LINE]}")] * count
    results = data.get("results") if isinstance(data, dict) else None
    if not (isinstance(results, list) and len(results) == count and all(map(_valid, results))):
        return [Disassembly(note="not disassembled: malformed reply from the decoder")] * count
    return [Disassembly(tuple(a), tuple(b)) for a, b in results]


def _valid(item: Any) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 2
        and all(
            isinstance(side, list)
            and len(side) <= MAX_LINES
            and all(isinstance(x, str) and len(x) <= MAX_LINE for x in side)
            for side in item
        )
    )
