"""RFC 6962 Merkle tree hashing, proofs and their verification (RFC 9162 section 2.1).

Owns: leaf and node hashes, the root of a list of leaf hashes, building inclusion and
consistency proofs from any source of complete-subtree hashes, and verifying both.
Does not own: where the hashes are stored (see `reprover.tlog.store`) or what a leaf means.

Verification follows RFC 9162 2.1.3.2 and 2.1.4.2 literally; proofs are built with RFC 6962's
recursive PATH and SUBPROOF, so the two halves check each other in the tests, and Go's
`golang.org/x/mod/sumdb/tlog` checks both in `tests/test_tlog_interop.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from reprover.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 6962 hash of one log entry: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of consecutive leaf-level hashes (RFC 6962 MTH).

    Hashing pairs level by level and carrying an odd last node up unchanged gives the same
    tree as RFC 6962's split at the largest power of two.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class SubtreeSource(Protocol):
    """Anything that can give the hash of a complete, aligned subtree of the tree."""

    def subtree(self, height: int, index: int) -> bytes:
        """Hash of entries [index * 2**height, (index + 1) * 2**height)."""
        ...


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(source: SubtreeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range RFC 6962's recursion produces (start aligned)."""
    n = end - start
    if n & (n - 1) == 0:
        height = n.bit_length() - 1
        return source.subtree(height, start >> height)
    k = _split(n)
    return node_hash(range_hash(source, start, start + k), range_hash(source, start + k, end))


def inclusion_proof(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]), from the leaf's sibling up to the root's child.

    Raises:
        ValueError: index is not below size.
    """
    if not 0 <= index < size:
        raise ValueError(f"entry {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(source, lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(source: SubtreeSource, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]).

    Raises:
        ValueError: old_size is not between 0 and new_size.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(source, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(range_hash(source, lo, hi))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` is entry `index` of the tree of `size` entries with `root`.

    Raises:
        VerificationError: the proof does not lead from the leaf to the root.
    """
    if not 0 <= index < size:
        raise VerificationError(f"entry {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE or sn == 0:
            raise VerificationError(f"the inclusion proof for entry {index} is malformed")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise VerificationError(
            f"the inclusion proof for entry {index} does not lead to the root of the tree of "
            f"size {size}: the entry is not in that tree"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    Raises:
        VerificationError: the proof does not show it (a fork or a rewritten history).
    """
    fail = VerificationError(
        f"the tree of size {new_size} is not an extension of the tree of size {old_size}: "
        f"the first {old_size} entries were rewritten, removed or forked"
    )
    if old_size > new_size:
        raise VerificationError(f"the log shrank from {old_size} to {new_size} entries")
    if old_size in (0, new_size):
        if proof or (old_size == new_size and old_root != new_root):
            raise fail
        return
    path = list(proof)
    if not path or any(len(p) != HASH_SIZE for p in path):
        raise fail
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    if _consistency_roots(old_size, new_size, path) != (old_root, new_root):
        raise fail


def _consistency_roots(
    old_size: int, new_size: int, path: list[bytes]
) -> tuple[bytes, bytes] | None:
    """RFC 9162 2.1.4.2 steps 3-7: the old and new roots the path leads to (None: too long)."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return (fr, sr) if sn == 0 else None
