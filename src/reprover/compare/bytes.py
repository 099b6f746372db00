"""Byte runs: where two files differ, found by streaming both in fixed-size chunks.

Owns: the exact list of differing byte ranges (offset, length) between two files, in bounded
memory. Equal chunks are skipped with one memcmp; in an unequal chunk the differing bytes are
found by XOR-ing the chunk as integers and scanning the result for non-zero bytes in C (`re`).
Does not own: what the bytes mean (see `reprover.compare.ledger`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reprover.errors import InputError

CHUNK = 1 << 20
_NONZERO = re.compile(rb"[^\x00]+")


def diff_runs(a: Path, b: Path, *, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """Return the maximal runs of differing bytes as (offset, length), in ascending order.

    Bytes past the end of the shorter file count as differing: they form one final run.

    Raises:
        InputError: either file cannot be read.
    """
    runs: list[tuple[int, int]] = []
    try:
        with a.open("rb") as fa, b.open("rb") as fb:
            size_a, size_b = os.fstat(fa.fileno()).st_size, os.fstat(fb.fileno()).st_size
            common = min(size_a, size_b)
            offset = 0
            while offset < common:
                want = min(chunk, common - offset)
                ca, cb = fa.read(want), fb.read(want)
                if len(ca) != want or len(cb) != want:
                    raise InputError(f"{a} or {b} changed size while being compared")
                if ca != cb:
                    _chunk_runs(ca, cb, offset, runs)
                offset += want
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    _extend(runs, common, abs(size_a - size_b))
    return runs


def _chunk_runs(ca: bytes, cb: bytes, base: int, runs: list[tuple[int, int]]) -> None:
    xored = (int.from_bytes(ca, "little") ^ int.from_bytes(cb, "little")).to_bytes(
        len(ca), "little"
    )
    for match in _NONZERO.finditer(xored):
        _extend(runs, base + match.start(), match.end() - match.start())


def _extend(runs: list[tuple[int, int]], offset: int, length: int) -> None:
    """Append a run, merging it with the previous one when they touch (across chunks)."""
    if length <= 0:
        return
    if runs and runs[-1][0] + runs[-1][1] == offset:
        runs[-1] = (runs[-1][0], runs[-1][1] + length)
    else:
        runs.append((offset, length))
