"""Moved layouts: align the top-level structures of two files by identity.

Owns: cutting a region map into its top-level pieces (headers, header tables, sections, symbol
tables, load commands, certificate table, gaps: the map's `structures`), each keyed by its
identity (name and n-th occurrence of that name: a section's name, or `#index` when it has
none); aligning the pieces of two maps by that key (`align`), saying for each how it was
aligned; translating the rebuilt file's executable spans into released offsets.
Does not own: comparing bytes or labelling them (`reprover.compare.ledger`), building maps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reprover.compare.regions.map import RegionMap, union
from reprover.compare.regions.partition import merged, pieces
from reprover.model import Kind


@dataclass(frozen=True)
class Pair:
    """A top-level structure in the released file (`a_*`) and/or the rebuilt one (`b_*`).

    A structure on one side only has the other side's offsets set to None.
    """

    name: str
    a_start: int | None
    a_end: int | None
    b_start: int | None
    b_end: int | None
    how: str


def top_level(regions_map: RegionMap) -> list[tuple[tuple[str, int], int, int]]:
    """The map's top-level pieces in file order, keyed (name, occurrence), disjoint.

    Structures that overlap (a hostile file) are cut where they meet; each byte belongs to
    exactly one piece.
    """
    regions = [(s, e, n, Kind.DATA.value) for s, e, n in regions_map.get("structures", [])]
    seen: Counter[str] = Counter()
    out = []
    for piece in merged(pieces(sorted(regions, key=lambda r: (r[0], -r[1])), regions_map["size"])):
        out.append(((piece.name, seen[piece.name]), piece.start, piece.end))
        seen[piece.name] += 1
    return out


def align(map_a: RegionMap, map_b: RegionMap) -> list[Pair]:
    """Align the top-level pieces of two maps by identity; released order, rebuilt-only last."""
    b_index = {key: (start, end) for key, start, end in top_level(map_b)}
    pairs = []
    for key, a_start, a_end in top_level(map_a):
        found = b_index.pop(key, None)
        name = key[0]
        if found is None:
            pairs.append(Pair(name, a_start, a_end, None, None, "only in the released file"))
            continue
        how = "by position" if name == "file" else f"by name{_nth(key[1])}"
        pairs.append(Pair(name, a_start, a_end, found[0], found[1], how))
    for key, (b_start, b_end) in b_index.items():
        pairs.append(Pair(key[0], None, None, b_start, b_end, "only in the rebuilt file"))
    return pairs


def _nth(n: int) -> str:
    return "" if n == 0 else f" (occurrence {n + 1})"


def translated_exec(map_b: RegionMap, pairs: list[Pair]) -> list[tuple[int, int]]:
    """The rebuilt file's executable spans, moved to released offsets through `pairs`."""
    out = []
    spans = [(int(s), int(e)) for s, e in map_b.get("exec", [])]
    for pair in pairs:
        if pair.a_start is None or pair.b_start is None or pair.a_end is None:
            continue
        length = min(pair.a_end - pair.a_start, (pair.b_end or 0) - pair.b_start)
        for start, end in spans:
            lo, hi = max(start, pair.b_start), min(end, pair.b_start + length)
            if lo < hi:
                out.append((pair.a_start + lo - pair.b_start, pair.a_start + hi - pair.b_start))
    return union(out)


def describe(pair: Pair) -> str:
    """One note line for a structure that moved, changed size or is on one side only."""
    if pair.a_start is None:
        where = f"0x{pair.b_start or 0:x}"
        return f"{pair.name}: only in the rebuilt file ({where}, {_len(pair, 'b')} bytes)"
    if pair.b_start is None:
        return (
            f"{pair.name}: only in the released file (0x{pair.a_start:x}, {_len(pair, 'a')} bytes)"
        )
    return (
        f"{pair.name}: aligned {pair.how}, released 0x{pair.a_start:x} ({_len(pair, 'a')} bytes), "
        f"rebuilt 0x{pair.b_start:x} ({_len(pair, 'b')} bytes)"
    )


def _len(pair: Pair, side: str) -> int:
    start, end = (pair.a_start, pair.a_end) if side == "a" else (pair.b_start, pair.b_end)
    return (end or 0) - (start or 0)


def display(name: str) -> str:
    """`elf.section[.rodata]` -> `section .rodata`, `elf.gap[after .text]` -> `gap after .text`."""
    if name.endswith("]") and "[" in name:
        head, inner = name[:-1].rsplit("[", 1)
        return f"{head.rsplit('.', 1)[-1].replace('_', ' ')} {inner}"
    return name
