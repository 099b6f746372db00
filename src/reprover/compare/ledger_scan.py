"""Finding the ledger's runs: walk the unequal chunks of two files, piece by piece.

Owns: `Scanner`, which compares two open files offset by offset or structure by aligned
structure (`regions.structure`), cuts each differing run at the pieces of the released file's
map and hands it to the `Budget`; bytes on one side only become one-sided runs with a detail
saying where and how much.
Does not own: which comparison runs (`ledger`), the bound (`ledger_budget`), labels
(`ledger_labels`).
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from reprover.compare.bytes import count_runs, unequal_chunks
from reprover.compare.ledger_budget import Budget
from reprover.compare.regions.partition import UNMAPPED, Piece
from reprover.compare.regions.structure import Pair, display
from reprover.model import Kind


class Scanner:
    """Walk unequal chunks of two files and hand each run to the budget, piece by piece."""

    def __init__(self, fa: int, fb: int, budget: Budget) -> None:
        self.fa, self.fb, self.budget = fa, fb, budget
        self.fine: list[Piece] = []
        self._starts: list[int] | None = None

    def flat(self, size_a: int, size_b: int, kind: Kind) -> None:
        """No usable map: one piece for the whole file."""
        self.fine = [Piece(0, max(size_a, 1), UNMAPPED, kind, ())]
        self.offset_by_offset(size_a, size_b)

    def offset_by_offset(self, size_a: int, size_b: int) -> None:
        common = min(size_a, size_b)
        self.compare(0, 0, common)
        if size_a > size_b:
            detail = f"only in the released file (the rebuilt file has {size_b} bytes)"
            self.one_sided(common, size_a, detail)
        elif size_b > size_a:
            detail = f"only in the rebuilt file: {size_b - size_a} bytes at 0x{size_a:x}"
            self.rebuilt_only(size_a, self._piece_at(max(size_a - 1, 0)), detail)

    def structural(self, pairs: list[Pair], kinds_b: dict[str, Kind]) -> None:
        last_end = 0
        for pair in pairs:
            if pair.a_start is None or pair.a_end is None:
                continue
            la = pair.a_end - pair.a_start
            last_end = pair.a_end
            if pair.b_start is None or pair.b_end is None:
                self.one_sided(pair.a_start, pair.a_end, "only in the released file")
                continue
            lb = pair.b_end - pair.b_start
            common = min(la, lb)
            self.compare(pair.a_start, pair.b_start, common)
            if la == lb:
                continue
            change = _size_change(pair.name, la, lb)
            if la > lb:
                detail = f"{change}: only in the released file"
                self.one_sided(pair.a_start + lb, pair.a_end, detail)
            else:
                at = pair.a_start + la
                piece = self._piece_at(max(at - 1, pair.a_start))
                where = f"0x{pair.b_start + la:x}"
                self.rebuilt_only(at, piece, f"{change}: {lb - la} bytes at {where} only in the "
                                  "rebuilt file")  # fmt: skip
        for pair in pairs:
            if pair.a_start is None and pair.b_start is not None and pair.b_end is not None:
                kind = kinds_b.get(pair.name, Kind.DATA)
                piece = Piece(last_end, last_end, pair.name, kind, ())
                length = pair.b_end - pair.b_start
                detail = f"only in the rebuilt file: {length} bytes at 0x{pair.b_start:x}"
                self.rebuilt_only(last_end, piece, detail)

    def compare(self, a_off: int, b_off: int, length: int) -> None:
        """Hand every differing run of two equal-length ranges to the budget."""
        delta = b_off - a_off
        prev_end, prev_tail = -1, 0
        for rel, mask in unequal_chunks(self.fa, self.fb, a_off, b_off, length):
            base = a_off + rel
            carry = prev_end == base and prev_tail == 1
            for piece in self._pieces(base, base + len(mask)):
                lo, hi = max(piece.start, base) - base, min(piece.end, base + len(mask)) - base
                if mask.find(1, lo, hi) >= 0:
                    continues = carry and lo == 0 and piece.start < base
                    self._part(piece, base, mask, (lo, hi), continues, delta)
            prev_end, prev_tail = base + len(mask), mask[-1]

    def _part(  # noqa: PLR0917 - the state of one piece in one chunk
        self,
        piece: Piece,
        base: int,
        mask: bytes,
        bounds: tuple[int, int],
        continues: bool,
        delta: int,
    ) -> None:
        """List (or, once the region is full, count) the runs of mask[lo:hi] for `piece`."""
        budget, (lo, hi) = self.budget, bounds
        pos, key = lo, (piece.name, piece.kind)
        if continues and mask[lo] and budget.extends(piece, base + lo, delta):
            end = _run_end(mask, lo, hi)
            budget.extend(end - lo)
            pos, continues = end, False
        while pos < hi and not budget.full(key):
            start = mask.find(1, pos, hi)
            if start < 0:
                return
            end = _run_end(mask, start, hi)
            if start == lo and continues:  # continues a run already counted
                budget.count(piece, 0, end - start, base + start, base + end)
            else:
                budget.keep(piece, base + start, end - start, delta)
            pos, continues = end, False
        if pos < hi:
            first = mask.find(1, pos, hi)
            if first < 0:
                return
            last = mask.rfind(1, pos, hi)
            runs, nbytes = count_runs(mask, pos, hi, continues=continues)
            budget.count(piece, runs, nbytes, base + first, base + last + 1)

    def one_sided(self, start: int, end: int, detail: str) -> None:
        """Every byte of [start, end) of the released file is only there: one run per piece."""
        for piece in self._pieces(start, end):
            lo, hi = max(piece.start, start), min(piece.end, end)
            if self.budget.full((piece.name, piece.kind)):
                self.budget.count(piece, 1, hi - lo, lo, hi)
            else:
                self.budget.keep(piece, lo, hi - lo, None, detail)

    def rebuilt_only(self, at: int, piece: Piece, detail: str) -> None:
        if self.budget.full((piece.name, piece.kind)):
            self.budget.count(piece, 1, 0, at, at)
        else:
            self.budget.keep(replace(piece, start=at, end=at), at, 0, None, detail)

    def _pieces(self, start: int, end: int) -> list[Piece]:
        if self._starts is None:
            self._starts = [p.start for p in self.fine]
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self.fine) and self.fine[i].start < end:
            if self.fine[i].end > start:
                out.append(self.fine[i])
            i += 1
        if not out:  # bytes past every piece (a map shorter than its file)
            out.append(Piece(start, end, UNMAPPED, Kind.DATA, ()))
        return out

    def _piece_at(self, offset: int) -> Piece:
        return self._pieces(offset, offset + 1)[0]


def _run_end(mask: bytes, start: int, hi: int) -> int:
    end = mask.find(0, start, hi)
    return hi if end < 0 else end


def _size_change(name: str, la: int, lb: int) -> str:
    if ".gap[" in name:
        what = "longer" if lb > la else "shorter"
        return f"{display(name)} is {abs(lb - la)} bytes {what} in the rebuilt file ({la} -> {lb})"
    verb = "grew" if lb > la else "shrank"
    return f"{display(name)} {verb} by {abs(lb - la)} bytes ({la} -> {lb})"
