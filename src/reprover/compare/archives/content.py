"""Member content: equal stored bytes found by comparing them, differing content hashed once.

Owns: `same_stored` (two members' stored bytes compared block by block, without hashing;
equal stored bytes and equal identity mean equal content, so nothing is expanded) and `take`
(a member's content streamed once: hashed and written to a private file in the same pass; a
file cut short by a limit or a malformed stream is removed before the error goes on), and
`take_pair` (both sides of a large member taken at once, in two threads).
Does not own: deciding what a difference means (`driver`), reading formats.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from reprover.compare.archives.listing import CHUNK, MalformedArchive, Member, Span, Stored
from reprover.model import Digest

PARALLEL_TAKE = 4 << 20  # stored bytes a side from which both sides are taken at once


def same_stored(a: Member, b: Member) -> bool | None:
    """Whether two members' content is the same by their stored bytes alone.

    True: equal stored bytes and equal identity (method, CRC, size), or equal bytes of plain
    members; decompression is a function of the stored bytes, so the content is equal. False:
    a plain member's bytes differ (its content differs). None: it cannot be told without
    expanding (no stored bytes, other identity, or compressed bytes that differ).

    Raises:
        MalformedArchive: the archive ends inside a member's stored bytes.
    """
    sa, sb, plain = a.stored, b.stored, a.plain  # each a view made when asked (ZIP)
    if sa is None or sb is None or plain != b.plain:
        return None
    if not plain and (a.identity is None or a.identity != b.identity):
        return None
    if isinstance(sa, Span) and isinstance(sb, Span):
        if sa.size != sb.size:
            return False if plain else None
        equal = same_bytes(sa, sb)
    else:  # stored bytes kept in memory by the format (a summary stream's skeleton)
        equal = same_stream(sa, sb)
    if equal:
        return True
    return False if plain else None


def same_inner(a: Span | str | None, b: Span | str | None) -> bool | None:
    """Whether two containers' decompressed content is the same (`Listing.inner`): two
    expanded files compared directly (up to their first difference), or two digests; None
    when either is not known.

    Raises:
        MalformedArchive: an expanded file is shorter than it was written.
    """
    if a is None or b is None:
        return None
    if isinstance(a, Span) and isinstance(b, Span):
        return a.size == b.size and same_bytes(a, b)
    return a == b


def same_stored_bytes(a: Stored, b: Stored) -> bool:
    """Whether two members' stored bytes are equal, whatever the content.

    Raises:
        MalformedArchive: an archive ends inside a member's stored bytes.
    """
    if isinstance(a, Span) and isinstance(b, Span):
        return a.size == b.size and same_bytes(a, b)
    return same_stream(a, b)


def same_bytes(a: Span, b: Span) -> bool:
    """Whether two spans of the same size hold the same bytes (read in lockstep, no hashing).

    Raises:
        MalformedArchive: a file ends inside its span.
    """
    size = min(a.size, b.size, CHUNK)
    buf_a, buf_b = bytearray(size), bytearray(size)
    left, pos_a, pos_b = a.size, a.start, b.start
    while left > 0:
        n = min(left, len(buf_a))
        if n < len(buf_a):
            buf_a, buf_b = bytearray(n), bytearray(n)
        a.file.seek(pos_a)
        b.file.seek(pos_b)
        if a.file.readinto(buf_a) != n or b.file.readinto(buf_b) != n:  # type: ignore[attr-defined]
            raise MalformedArchive("member data truncated")
        if buf_a != buf_b:
            return False
        left, pos_a, pos_b = left - n, pos_a + n, pos_b + n
    return a.size == b.size


def same_stream(a: Stored, b: Stored) -> bool:
    """Whether two streams of blocks, however cut, hold the same bytes."""
    blocks_a = (x for x in (a.blocks() if isinstance(a, Span) else a()) if x)
    blocks_b = (x for x in (b.blocks() if isinstance(b, Span) else b()) if x)
    xa: bytes | None = b""
    xb: bytes | None = b""
    while True:
        if not xa:
            xa = next(blocks_a, None)
        if not xb:
            xb = next(blocks_b, None)
        if xa is None or xb is None:
            return xa is None and xb is None
        n = min(len(xa), len(xb))
        if xa[:n] != xb[:n]:
            return False
        xa, xb = xa[n:], xb[n:]


def take(m: Member, target: Path) -> Digest:
    """Stream `m`'s content once: hash it and write it to `target` (a new private file).

    Returns its digest. On any error `target` is removed before the error goes on, so a member
    cut short by a limit leaves nothing behind.

    Raises:
        LimitHit: a bound was reached while expanding.
        MalformedArchive: the content is corrupt (CRC, size, truncated).
        OSError: the private file cannot be written.
    """
    h, size = hashlib.sha256(), 0
    try:
        with target.open("xb") as out:
            if m.opener is not None:
                for block in m.opener():
                    h.update(block)
                    out.write(block)
                    size += len(block)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Digest(h.hexdigest(), size)


def take_pair(a: Member, b: Member, targets: tuple[Path, Path]) -> tuple[Digest, Digest]:
    """`take` two members into `targets` (released, rebuilt); large ones (stored bytes of
    PARALLEL_TAKE or more a side, a .deb's data.tar.gz in its ar) at once, in two threads
    (hashing, decompressing and writing release the GIL). On an error neither file is left
    behind (the other side is waited for); the released side's error comes first.

    Raises:
        LimitHit: a bound was reached while expanding.
        MalformedArchive: a content is corrupt.
        OSError: a private file cannot be written.
    """
    ta, tb = targets
    if not all(isinstance(m.stored, Span) and m.stored.size >= PARALLEL_TAKE for m in (a, b)):
        da = take(a, ta)
        try:
            return da, take(b, tb)
        except BaseException:
            ta.unlink(missing_ok=True)
            raise
    pool = ThreadPoolExecutor(1)
    try:
        job = pool.submit(take, b, tb)
        try:
            da = take(a, ta)
        except Exception:
            _discard(job, tb)
            raise
        try:
            return da, job.result()
        except Exception:
            ta.unlink(missing_ok=True)
            raise
    finally:  # on Ctrl-C the other side is not waited for (its file goes with the folder)
        pool.shutdown(wait=False)


def _discard(job: Future[Digest], target: Path) -> None:
    """Wait for a `take` whose pair failed, and remove the file it wrote (if it wrote one)."""
    try:
        job.result()
    except Exception:  # noqa: BLE001 - its own error is moot: the pair's first error is raised
        return
    target.unlink(missing_ok=True)
