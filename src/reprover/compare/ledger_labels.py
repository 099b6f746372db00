"""Labels of ledger rows: what a piece of bytes is called, whether it is a consequence, its values.

Owns: cutting a region map's pieces at the executable spans (executable bytes are `code`),
`consequential` (a GNU build-id, a Mach-O `LC_UUID`, a PE checksum or Brepro hash, Mach-O
code-directory page hashes: bytes that follow any other change), the old -> new value of a
small run (`values`, timestamps as dates) and the nearest symbol of a byte (`Symbols`).
Does not own: finding the runs (`ledger_scan`), bounding them (`ledger_budget`), or choosing
the comparison (`ledger`).
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import BinaryIO

from reprover.compare.regions.map import RegionMap, Symbol
from reprover.compare.regions.partition import UNMAPPED, Piece, merged, pieces
from reprover.model import Kind

CONSEQUENCE_KINDS = frozenset({Kind.BUILD_ID, Kind.CHECKSUM})
CONSEQUENCE_NAMES = re.compile(r".*\.code_directory\.(code_slot\[\d+\]|special_slots)$")
SHOW_VALUES = 16


def fine_pieces(regions_map: RegionMap, exec_spans: list[tuple[int, int]]) -> list[Piece]:
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


def consequential(piece: Piece) -> bool:
    """Whether the piece's bytes follow any other change (a build id, a checksum, page hashes)."""
    return (
        piece.kind in CONSEQUENCE_KINDS
        or piece.name.endswith(("pe.debug.repro", ".LC_UUID.uuid"))
        or CONSEQUENCE_NAMES.match(piece.name) is not None
    )


def values(  # noqa: PLR0917 - a run and where its counterpart is
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


class Symbols:
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
