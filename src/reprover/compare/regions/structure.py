"""Shifted layouts: compare two files by structure when byte offsets stop lining up.

Owns: matching the pieces of two region maps by name (and occurrence), comparing matched pieces
byte for byte when they have the same size and by size otherwise, so the ledger says "section
.rodata grew by 24 bytes" instead of listing a million shifted bytes; reading byte ranges of two
open files in bounded memory.
Does not own: building region maps, classification or policy (`ledger`, `reprover.policy`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

from reprover.compare.regions.map import RegionMap
from reprover.compare.regions.partition import Piece, merged, pieces

CHUNK = 1 << 20
SHOW_VALUES = 16
_NONZERO = re.compile(rb"[^\x00]+")


@dataclass(frozen=True)
class Change:
    """One structural difference, located in the released file (`offset`, `length`)."""

    offset: int
    length: int
    piece: Piece
    detail: str | None = None


def keyed(regions_map: RegionMap) -> list[tuple[tuple[str, int], Piece]]:
    """Return all pieces of a map with a key (name, n-th occurrence of that name)."""
    seen: Counter[str] = Counter()
    out = []
    for item in merged(pieces(regions_map["regions"], regions_map["size"])):
        out.append(((item.name, seen[item.name]), item))
        seen[item.name] += 1
    return out


def compare_structure(
    fa: BinaryIO, fb: BinaryIO, map_a: RegionMap, map_b: RegionMap
) -> list[Change]:
    """Compare two files piece by piece, matched by name; offsets are in the released file."""
    a_pieces = keyed(map_a)
    b_index = dict(keyed(map_b))
    changes: list[Change] = []
    last_end = 0
    for key, pa in a_pieces:
        pb = b_index.pop(key, None)
        last_end = pa.end
        if pb is None:
            changes.append(Change(pa.start, pa.end - pa.start, pa, "only in the released file"))
            continue
        la, lb = pa.end - pa.start, pb.end - pb.start
        if la == lb:
            runs = range_runs(fa, fb, pa.start, pb.start, la)
            detail = _values(fa, fb, pa.start, pb.start, la) if runs and la <= SHOW_VALUES else None
            changes.extend(Change(pa.start + rel, n, pa, detail) for rel, n in runs)
        elif not _same_prefix_growth(fa, fb, pa.start, pb.start, min(la, lb)):
            changes.append(Change(pa.start, la, pa, _size_change(pa.name, la, lb, differs=True)))
        else:
            changes.append(Change(pa.start, la, pa, _size_change(pa.name, la, lb, differs=False)))
    for pb in b_index.values():
        changes.append(
            Change(
                last_end,
                0,
                pb,
                f"only in the rebuilt file ({pb.end - pb.start} bytes at 0x{pb.start:x})",
            )
        )
    changes.sort(key=lambda c: (c.offset, c.length))
    return changes


def _values(fa: BinaryIO, fb: BinaryIO, a_off: int, b_off: int, length: int) -> str:
    fa.seek(a_off)
    fb.seek(b_off)
    return f"{fa.read(length).hex()} -> {fb.read(length).hex()}"


def _size_change(name: str, la: int, lb: int, *, differs: bool) -> str:
    verb = "grew" if lb > la else "shrank"
    what = "" if not differs else "; the common part differs too"
    return f"{_display(name)} {verb} by {abs(lb - la)} bytes ({la} -> {lb}){what}"


def _display(name: str) -> str:
    """`elf.section[.rodata]` -> `section .rodata` (for sentences)."""
    match = re.fullmatch(r"(?:[a-z]+(?:\[[^\]]*\])?\.)?([a-z_]+)\[(.+)\]", name)
    return f"{match.group(1)} {match.group(2)}" if match else name


def _same_prefix_growth(fa: BinaryIO, fb: BinaryIO, a_off: int, b_off: int, length: int) -> bool:
    return not range_runs(fa, fb, a_off, b_off, length)


def range_runs(
    fa: BinaryIO, fb: BinaryIO, a_off: int, b_off: int, length: int
) -> list[tuple[int, int]]:
    """Return differing runs (relative offset, length) between two equal-length file ranges."""
    runs: list[tuple[int, int]] = []
    done = 0
    while done < length:
        want = min(CHUNK, length - done)
        fa.seek(a_off + done)
        fb.seek(b_off + done)
        ca, cb = fa.read(want), fb.read(want)
        if len(ca) != want or len(cb) != want:
            runs.append((done, length - done))
            break
        if ca != cb:
            xored = (int.from_bytes(ca, "little") ^ int.from_bytes(cb, "little")).to_bytes(
                want, "little"
            )
            for m in _NONZERO.finditer(xored):
                start = done + m.start()
                if runs and runs[-1][0] + runs[-1][1] == start:
                    runs[-1] = (runs[-1][0], runs[-1][1] + m.end() - m.start())
                else:
                    runs.append((start, m.end() - m.start()))
        done += want
    return runs
