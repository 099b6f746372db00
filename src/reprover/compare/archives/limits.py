"""Bounds on opening untrusted archives: bytes, depth, members, names and time.

Owns: `Limits` (the bounds, with their defaults), `Budget` (what one top-level comparison has
spent so far, shared by every layer under it) and `LimitHit`, raised when a bound is reached.
Does not own: what a hit means for the verdict (the recursion driver reports the member, or
the archive, `inconclusive` with the limit named; never a crash, never a pass).

The expanded-bytes bound is relative to the input (a zip bomb expands a small file a
thousandfold) with a floor, and capped absolutely, so a large honest archive still opens.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

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
    members: int = 200_000  # members over the whole tree
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
class Budget:
    """What one top-level comparison may still spend; shared by all its layers."""

    limits: Limits
    input_size: int
    expanded: int = 0
    members: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def spend(self, size: int) -> None:
        """Count `size` expanded bytes.

        Raises:
            LimitHit: the expanded-bytes bound or the time bound is reached.
        """
        with self.lock:  # both sides of a pair may be expanded at once
            self.expanded += size
        allowed = self.limits.byte_budget(self.input_size)
        if self.expanded > allowed:
            raise LimitHit(
                "archive.limit.bytes",
                f"more than {allowed} bytes expanded from a {self.input_size}-byte input "
                f"(ratio {self.limits.ratio}, floor {self.limits.floor}, cap {self.limits.cap}); "
                "a decompression bomb or an archive too large to verify",
            )
        self.clock()

    def member(self, name: bytes) -> None:
        """Count one member and check its name's length.

        Raises:
            LimitHit: too many members, a name too long, or out of time.
        """
        with self.lock:
            self.members += 1
        if self.members > self.limits.members:
            raise LimitHit(
                "archive.limit.members", f"more than {self.limits.members} members in all"
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
        if time.monotonic() - self.started > self.limits.seconds:
            raise LimitHit(
                "archive.limit.time", f"more than {self.limits.seconds:.0f} s opening archives"
            )
