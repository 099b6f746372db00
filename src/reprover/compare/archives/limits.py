"""Bounds on opening untrusted archives: bytes, depth, members, names and time.

Owns: `Limits` (the bounds, with their defaults), `Budget` (what one top-level comparison has
spent so far, shared by every layer under it; the member count is kept per side, so the bound
on members is a bound on each archive of the pair, not on both together) and `LimitHit`,
raised when a bound is reached.
Does not own: what a hit means for the verdict (the recursion driver reports the member, or
the archive, `inconclusive` with the limit named; never a crash, never a pass).

The expanded-bytes bound is relative to the input (a zip bomb expands a small file a
thousandfold) with a floor, and capped absolutely, so a large honest archive still opens.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from reprover.errors import InconclusiveError

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """The bounds for one top-level artifact and everything nested in it."""

    ratio: int = 100  # expanded bytes per input byte, over the whole tree
    floor: int = 1 * GiB  # expanded bytes always allowed, whatever the input size
    cap: int = 64 * GiB  # expanded bytes never exceeded
    depth: int = 8  # nesting levels below the top-level artifact
    members_per_side: int = 200_000  # members of one side (released or rebuilt), all layers
    name: int = 4096  # bytes in one member name
    seconds: float = 900.0  # wall-clock time for the whole tree

    def byte_budget(self, input_size: int) -> int:
        """The expanded bytes allowed for an input of `input_size` bytes."""
        return min(self.cap, max(self.floor, self.ratio * input_size))


class LimitHit(InconclusiveError):  # noqa: N818 - a hit, not a program error
    """A bound was reached; `limit` names it (`archive.limit.bytes`, ...)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"{limit}: {message}")
        self.limit = limit


@dataclass
class Spent:
    """What both sides of one top-level comparison have spent, over all its layers."""

    expanded: int = 0
    members: list[int] = field(default_factory=lambda: [0, 0])  # released, rebuilt
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


SIDES = ("released", "rebuilt")


@dataclass(frozen=True)
class Budget:
    """What one top-level comparison may still spend; shared by all its layers.

    `side` (0 released, 1 rebuilt) is the archive whose members this view counts: the readers
    of one side get `for_side(side)`; expanded bytes and time are counted over both sides.
    """

    limits: Limits
    input_size: int
    side: int = 0
    spent: Spent = field(default_factory=Spent)

    def for_side(self, side: int) -> Budget:
        """The same budget, counting members against `side` (0 released, 1 rebuilt)."""
        return replace(self, side=side)

    def spend(self, size: int) -> None:
        """Count `size` expanded bytes.

        Raises:
            LimitHit: the expanded-bytes bound or the time bound is reached.
        """
        spent = self.spent
        with spent.lock:  # both sides of a pair may be expanded at once
            spent.expanded += size
        allowed = self.limits.byte_budget(self.input_size)
        if spent.expanded > allowed:
            raise LimitHit(
                "archive.limit.bytes",
                f"more than {allowed} bytes expanded from a {self.input_size}-byte input "
                f"(ratio {self.limits.ratio}, floor {self.limits.floor}, cap {self.limits.cap}); "
                "a decompression bomb or an archive too large to verify",
            )
        self.clock()

    def member(self, name: bytes) -> None:
        """Count one member of this side and check its name's length.

        Raises:
            LimitHit: too many members on this side, a name too long, or out of time.
        """
        spent, bound = self.spent, self.limits.members_per_side
        with spent.lock:
            spent.members[self.side] += 1
            count = spent.members[self.side]
        if count > bound:
            raise LimitHit(
                "archive.limit.members_per_side",
                f"more than {bound} members in the {SIDES[self.side]} archive, all its layers "
                f"counted (the bound is per side)",
            )
        if len(name) > self.limits.name:
            raise LimitHit(
                "archive.limit.name",
                f"a member name of {len(name)} bytes (limit {self.limits.name})",
            )
        self.clock()

    def nest(self, depth: int) -> None:
        """Check a nesting depth.

        Raises:
            LimitHit: `depth` exceeds the bound.
        """
        if depth > self.limits.depth:
            raise LimitHit(
                "archive.limit.depth", f"archives nested more than {self.limits.depth} deep"
            )

    def clock(self) -> None:
        """Raises: LimitHit: the time bound is reached."""
        if time.monotonic() - self.spent.started > self.limits.seconds:
            raise LimitHit(
                "archive.limit.time", f"more than {self.limits.seconds:.0f} s opening archives"
            )
