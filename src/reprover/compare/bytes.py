"""Byte runs: where two files differ, found by streaming both in fixed-size chunks.

Owns: the exact list of differing byte ranges (offset, length) between two files (`diff_runs`),
and the streaming primitive the ledger uses instead (`unequal_chunks`: a 0/1 mask of each
unequal chunk of two file ranges, so that runs can be listed or only counted, in bounded
memory, however many there are; `count_runs`). Equal chunks are skipped with one memcmp; in an
unequal chunk the differing bytes are found by XOR-ing the chunk as integers and scanning the
result for non-zero bytes in C (`re`, `bytes.count`).
Does not own: what the bytes mean (see `reprover.compare.ledger`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from reprover.errors import InputError

CHUNK = 1 << 20
_NONZERO = re.compile(rb"[^\x00]+")
_TO_BIT = bytes([0] + [1] * 255)


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


def unequal_chunks(
    fa: int, fb: int, a_off: int, b_off: int, length: int, *, chunk: int = CHUNK
) -> Iterator[tuple[int, bytes]]:
    """Yield (relative offset, mask) for each unequal chunk of two equal-length ranges.

    `fa` and `fb` are file descriptors read with `os.pread` (no shared file position).
    `mask` is 1 where the chunks differ and 0 elsewhere (find runs with `mask.find`).

    Raises:
        InputError: a file is shorter than the range (it changed while being compared) or
            cannot be read.
    """
    done = 0
    while done < length:
        want = min(chunk, length - done)
        try:
            ca, cb = os.pread(fa, want, a_off + done), os.pread(fb, want, b_off + done)
        except OSError as exc:
            raise InputError(f"cannot read a compared file: {exc.strerror or exc}") from exc
        if len(ca) != want or len(cb) != want:
            raise InputError("a compared file changed size while being compared")
        if ca != cb:
            xored = (int.from_bytes(ca, "little") ^ int.from_bytes(cb, "little")).to_bytes(
                want, "little"
            )
            yield done, xored.translate(_TO_BIT)
        done += want


def count_runs(mask: bytes, start: int, end: int, *, continues: bool) -> tuple[int, int]:
    """Return (runs, bytes) of differing bytes in mask[start:end], in C.

    `continues` says the byte before `start` differed and belongs to the same run, so a run
    at `start` is not a new one.
    """
    part = mask[start:end]
    nbytes = part.count(1)
    if not nbytes:
        return 0, 0
    runs = ((b"\x01" if continues else b"\x00") + part).count(b"\x00\x01")
    return runs, nbytes
