"""Audit a log: recompute every tile and the root from the entries; prove it only grew.

Owns: reading every entry bundle (and every oversized entry's content) of the tree the
checkpoint signs, recomputing each hash tile at every level and the root, comparing each with
what the log stores and signs, and proving consistency with an older checkpoint a monitor kept
(or, given an older copy of the log, naming the first entry that differs from it).
Does not own: the layout (see `reprover.tlog.tiles`) or the lock and file access.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reprover.errors import VerificationError
from reprover.tlog import checkpoint, log, merkle, note, tiles
from reprover.tlog.checkpoint import Checkpoint
from reprover.tlog.store import Store

HASH = merkle.HASH_SIZE


@dataclass(frozen=True)
class AuditResult:
    """What an audit verified."""

    checkpoint: Checkpoint
    since: int | None
    blobs: int


def audit(store: Store, log_key: note.Verifier, since: bytes | Store | None = None) -> AuditResult:
    """Verify the whole log, and that it extends an older view when `since` is given.

    Args:
        store: the log folder.
        log_key: the log's verifier key.
        since: an older signed checkpoint, or an older copy of the log folder.

    Raises:
        InputError: the checkpoint or `since` is malformed.
        VerificationError: a signature, bundle, tile, content or root does not check, or the
            log is not an extension of `since`; the message names the first bad entry or tile.
    """
    current = log.read_checkpoint(store, log_key)
    reader = log.TreeReader(store, current.size)
    above, blobs = _check_entries(store, reader)
    level = 1
    while above or tiles.tile_width(current.size, level, 0):
        above = _check_level(reader, level, above)
        level += 1
    if reader.root() != current.root:
        raise VerificationError(
            f"the entries hash to a root the checkpoint does not sign (size {current.size}): "
            "the checkpoint or the tiles were changed"
        )
    old_size = None
    if since is not None:
        old_size = _check_since(store, reader, current, log_key, since)
    return AuditResult(current, old_size, blobs)


def _check_entries(store: Store, reader: log.TreeReader) -> tuple[list[bytes], int]:
    """Check every bundle against its level-0 tile; return the level-1 hashes and blob count."""
    size, blobs, above = reader.size, 0, []
    for index in range((size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        width = tiles.tile_width(size, 0, index)
        first = index * tiles.TILE_WIDTH
        path = tiles.tile_path(None, index, width)
        try:
            data = store.read(path)
        except VerificationError as exc:
            raise VerificationError(f"entry {first}: {exc.message}") from exc
        entries = tiles.decode_bundle(data, width, path=path, first=first)
        computed = [merkle.leaf_hash(entry) for entry in entries]
        stored = reader.tile(0, index)
        for offset, leaf in enumerate(computed):
            if stored[offset * HASH : (offset + 1) * HASH] != leaf:
                raise VerificationError(
                    f"entry {first + offset} does not match its hash in "
                    f"{tiles.tile_path(0, index, width)}: the entry or the tile was changed"
                )
        for offset, entry in enumerate(entries):
            blob = tiles.blob_digest(entry)
            if blob is not None:
                _check_blob(store, first + offset, *blob)
                blobs += 1
        if width == tiles.TILE_WIDTH:
            above.append(merkle.root_of(computed))
    return above, blobs


def _check_blob(store: Store, index: int, digest: str, size: int) -> None:
    path = tiles.blob_path(digest)
    try:
        content = store.read(path, limit=size)
    except VerificationError as exc:
        raise VerificationError(f"entry {index}: its content {exc.message}") from exc
    if len(content) != size or hashlib.sha256(content).hexdigest() != digest:
        raise VerificationError(f"entry {index}: its content {path} was changed")


def _check_level(reader: log.TreeReader, level: int, computed: list[bytes]) -> list[bytes]:
    """Compare level `level`'s tiles with the hashes computed below; return the next level's."""
    above = []
    span = tiles.TILE_WIDTH**level
    for index in range((len(computed) + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        chunk = computed[index * tiles.TILE_WIDTH : (index + 1) * tiles.TILE_WIDTH]
        stored = reader.tile(level, index)
        for offset, value in enumerate(chunk):
            if stored[offset * HASH : (offset + 1) * HASH] != value:
                first = (index * tiles.TILE_WIDTH + offset) * span
                raise VerificationError(
                    f"{tiles.tile_path(level, index, len(chunk))} hash {offset} does not match "
                    f"entries {first}..{first + span - 1}: the tile was changed"
                )
        if len(chunk) == tiles.TILE_WIDTH:
            above.append(merkle.root_of(chunk))
    return above


def _check_since(
    store: Store,
    reader: log.TreeReader,
    current: Checkpoint,
    log_key: note.Verifier,
    since: bytes | Store,
) -> int:
    """Prove the current tree extends the older one; name the first changed entry if we can."""
    if isinstance(since, Store):
        old = log.read_checkpoint(since, log_key)
        old_reader = log.TreeReader(since, old.size)
        if old_reader.root() != old.root:
            raise VerificationError(f"the older copy {since.root} does not match its checkpoint")
        _first_difference(reader, old_reader, min(old.size, current.size))
    else:
        old = checkpoint.open_checkpoint(since, log_key)
    if old.size > current.size:
        raise VerificationError(
            f"the log shrank from {old.size} to {current.size} entries: entries "
            f"{current.size}..{old.size - 1} were removed"
        )
    proof = merkle.consistency_proof(reader, old.size, current.size)
    try:
        merkle.verify_consistency(old.size, current.size, old.root, current.root, proof)
    except VerificationError as exc:
        raise VerificationError(
            f"{exc.message}; this log is not an extension of the checkpoint of size {old.size}",
            hint="audit with --since an older copy of the log folder to name the first changed "
            "entry",
        ) from exc
    return old.size


def _first_difference(new: log.TreeReader, old: log.TreeReader, count: int) -> None:
    for index in range((count + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        width = min(tiles.TILE_WIDTH, count - index * tiles.TILE_WIDTH)
        a, b = new.tile(0, index)[: width * HASH], old.tile(0, index)[: width * HASH]
        if a != b:
            offset = next(
                i
                for i in range(width)
                if a[i * HASH : (i + 1) * HASH] != b[i * HASH : (i + 1) * HASH]
            )
            entry = index * tiles.TILE_WIDTH + offset
            raise VerificationError(
                f"history was rewritten: entry {entry} differs from the older copy of the log "
                "(changed, removed or reordered)"
            )
