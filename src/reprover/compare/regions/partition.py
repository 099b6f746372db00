"""Flatten nested regions into pieces: each byte gets its most specific region and context.

Owns: the sweep that turns a region map's nested, possibly overlapping ranges into consecutive
pieces `(start, end, leaf, context)`, where `leaf` is the smallest region holding the piece (the
latest-added one on ties) and `context` the enclosing regions, outermost first. Segments and
fat slices (`CONTEXT_ONLY`) are never a leaf when another region holds the byte: they say how
the loader maps bytes, not what the bytes are.
Does not own: building region maps (`regions_*`) or comparing files (`ledger`, `structure`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from reprover.compare.regions.map import Region
from reprover.model import Kind

UNMAPPED = "file"
CONTEXT_ONLY = (".segment[", ".slice[")


@dataclass(frozen=True)
class Piece:
    """A maximal byte range with one most specific region."""

    start: int
    end: int
    name: str
    kind: Kind
    context: tuple[str, ...]
    leaf_start: int = 0
    leaf_end: int = 0


def pieces(
    regions: Sequence[Region], size: int, spans: Sequence[tuple[int, int]] | None = None
) -> Iterator[Piece]:
    """Yield the pieces of [0, size), or only those overlapping `spans`, clipped to them.

    Args:
        regions: the map's regions, sorted by (start, -end) in the order they were added.
        size: the file size.
        spans: sorted, non-overlapping (offset, length) ranges of interest; None for all bytes.

    Yields:
        Pieces in ascending order. Bytes no region holds become pieces named `file`.
    """
    events: list[tuple[int, int, int]] = []
    for i, (start, end, _, _) in enumerate(regions):
        events.append((start, 1, i))
        events.append((end, 0, i))
    events.sort()
    events.append((size, 0, -1))
    wanted = [(0, size)] if spans is None else [(o, o + n) for o, n in spans]
    w = 0
    active: dict[int, None] = {}
    pos = 0
    for at, is_start, idx in events:
        if at > pos:
            while w < len(wanted) and wanted[w][1] <= pos:
                w += 1
            k = w
            while k < len(wanted) and wanted[k][0] < at:
                lo, hi = max(pos, wanted[k][0]), min(at, wanted[k][1])
                if lo < hi:
                    yield _piece(regions, active, lo, hi)
                k += 1
            pos = at
        if idx < 0:
            break
        if is_start:
            active[idx] = None
        else:
            active.pop(idx, None)


def _piece(regions: Sequence[Region], active: dict[int, None], lo: int, hi: int) -> Piece:
    if not active:
        return Piece(lo, hi, UNMAPPED, Kind.DATA, ())
    ordered = sorted(
        active,
        key=lambda i: (
            not any(c in regions[i][2] for c in CONTEXT_ONLY),
            regions[i][0] - regions[i][1],
            i,
        ),
    )
    leaf = regions[ordered[-1]]
    context = tuple(regions[i][2] for i in ordered[:-1])
    return Piece(lo, hi, leaf[2], Kind(leaf[3]), context, leaf[0], leaf[1])


def merged(items: Iterator[Piece]) -> Iterator[Piece]:
    """Join consecutive pieces that touch and share their region (split by a region edge only)."""
    current: Piece | None = None
    for item in items:
        if current is not None and current.end == item.start and current.name == item.name:
            current = replace(current, end=item.end)
            continue
        if current is not None:
            yield current
        current = item
    if current is not None:
        yield current
