"""The evidence log on disk: create, append in batches, read the tree, find and prove entries.

Owns: the order of writes that makes every crash recoverable (oversized contents, entry
bundles and hash tiles, then one barrier that makes them all durable, then the signed
checkpoint, fsynced, last, then removal of the partial tiles whose full tile now exists), the
check that the tiles an append builds on match the signed checkpoint, and reading
complete-subtree hashes out of the tiles for proofs.
Does not own: file access (see `reprover.tlog.store`), the full audit (`reprover.tlog.audit`),
cosigning (`reprover.tlog.witness`) or proof files (`reprover.tlog.proof`).

Anything in the folder beyond the size the checkpoint signs (a killed append's tiles) is
ignored by readers and overwritten by the next append.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover.errors import InputError, VerificationError
from reprover.tlog import checkpoint, merkle, note, tiles
from reprover.tlog.checkpoint import Checkpoint
from reprover.tlog.store import Store

CHECKPOINT = "checkpoint"
VKEY_FILE = "log.vkey"
HASH = merkle.HASH_SIZE


class TreeReader:
    """Complete-subtree hashes of the tree of `size` entries, read from its tiles."""

    def __init__(self, store: Store, size: int) -> None:
        self.store = store
        self.size = size
        self._tiles: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        """The hashes of one tile of this tree (full, or partial at its right edge).

        Raises:
            VerificationError: the tile is missing, a symlink, or of the wrong length.
        """
        key = (level, index)
        if key not in self._tiles:
            width = tiles.tile_width(self.size, level, index)
            if width == 0:
                raise VerificationError(
                    f"tile {level}/{index} is not part of a tree of {self.size}"
                )
            path = tiles.tile_path(level, index, width)
            data = self.store.read(path, limit=width * HASH)
            if len(data) != width * HASH:
                raise VerificationError(f"tile {path} holds {len(data)} bytes, not {width} hashes")
            self._tiles[key] = data
        return self._tiles[key]

    def subtree(self, height: int, index: int) -> bytes:
        """Hash of entries [index * 2**height, (index + 1) * 2**height).

        Raises:
            VerificationError: a tile it needs is missing or malformed.
        """
        level, rest = divmod(height, tiles.TILE_HEIGHT)
        start = index << rest
        data = self.tile(level, start >> tiles.TILE_HEIGHT)
        offset = (start % tiles.TILE_WIDTH) * HASH
        chunk = data[offset : offset + (HASH << rest)]
        if len(chunk) != HASH << rest:
            raise VerificationError(f"the tiles do not cover entries at height {height}")
        return merkle.root_of([chunk[i : i + HASH] for i in range(0, len(chunk), HASH)])

    def root(self) -> bytes:
        """The root hash of the tree, computed from its tiles.

        Raises:
            VerificationError: a tile it needs is missing or malformed.
        """
        if self.size == 0:
            return merkle.EMPTY_ROOT
        return merkle.range_hash(self, 0, self.size)

    def edge(self, level: int) -> list[bytes]:
        """The hashes of the rightmost, partial tile at `level` (empty when there is none)."""
        index = self.size // tiles.TILE_WIDTH ** (level + 1)
        if tiles.tile_width(self.size, level, index) == 0:
            return []
        data = self.tile(level, index)
        return [data[i : i + HASH] for i in range(0, len(data), HASH)]


@dataclass(frozen=True)
class Appended:
    """The outcome of one append: the indexes given, and the new signed checkpoint."""

    indexes: tuple[int, ...]
    checkpoint: Checkpoint


def create(folder: Path, origin: str, key: Ed25519PrivateKey) -> note.Verifier:
    """Make an empty log in `folder` (created if missing, must be empty) signed by `key`.

    Returns:
        The log's verifier key (also written to `folder/log.vkey`).

    Raises:
        InputError: the origin is not a valid key name, or the folder is not empty.
        InconclusiveError: the files cannot be written.
    """
    note.check_name(origin, "origin")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        empty = not any(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot make the log folder {folder}: {exc.strerror or exc}") from exc
    if not empty:
        raise InputError(f"{folder} is not empty", hint="give a new or empty folder for the log")
    verifier = note.verifier_for(origin, key)
    with Store(folder) as store, store.locked(exclusive=True):
        store.write(VKEY_FILE, verifier.vkey.encode() + b"\n")
        signed = note.sign(checkpoint.body(origin, 0, merkle.EMPTY_ROOT), origin, key)
        store.write(CHECKPOINT, signed)
        store.sync()
    return verifier


def read_checkpoint(
    store: Store, log: note.Verifier, witnesses: Sequence[note.Verifier] = ()
) -> Checkpoint:
    """The log's current checkpoint, verified against its key.

    Raises:
        InputError: it is malformed.
        VerificationError: missing, a symlink, or not validly signed by `log`.
    """
    return checkpoint.open_checkpoint(store.read(CHECKPOINT, limit=note.MAX_NOTE), log, witnesses)


def append(folder: Path, contents: Sequence[bytes], key: Ed25519PrivateKey) -> Appended:
    """Append each content as one entry (oversized ones as digest records) and sign.

    Holds the log's exclusive lock throughout, so concurrent appenders are serialized.

    Raises:
        InputError: the folder is not a log.
        VerificationError: `key` did not sign its checkpoint, or its tiles do not match it.
        InconclusiveError: a write failed (the log is left as it was before this append).
    """
    with Store(folder) as store, store.locked(exclusive=True):
        signed = store.read(CHECKPOINT, limit=note.MAX_NOTE)
        origin = checkpoint.peek_origin(signed)
        verifier = note.verifier_for(origin, key)
        try:
            current = checkpoint.open_checkpoint(signed, verifier)
        except VerificationError as exc:
            raise VerificationError(
                f"the log in {folder} is not signed by this key: {exc.message}",
                hint="append with the key the log was created with",
            ) from exc
        reader = TreeReader(store, current.size)
        if reader.root() != current.root:
            raise VerificationError(
                f"the tiles in {folder} do not match its signed checkpoint; nothing appended",
                hint="run 'reprover log audit' to find the damage",
            )
        for leftover in list(store.leftovers()):
            store.remove(leftover)
        entries = [_store_blob(store, content) for content in contents]
        size = _extend(store, reader, entries)
        store.barrier()
        root = TreeReader(store, size).root()
        new_signed = note.sign(checkpoint.body(origin, size, root), origin, key)
        store.write(CHECKPOINT, new_signed)
        store.sync()
        _drop_superseded(store, current.size, size)
        store.sync()
    new = Checkpoint(origin, size, root, new_signed)
    return Appended(tuple(range(current.size, size)), new)


def _store_blob(store: Store, content: bytes) -> bytes:
    entry = tiles.entry_for(content)
    if entry is not content:
        store.write(tiles.blob_path(hashlib.sha256(content).hexdigest()), content, durable=False)
    return entry


def _extend(store: Store, reader: TreeReader, entries: Sequence[bytes]) -> int:
    """Write the bundles and tiles of the tree grown by `entries`; return the new size.

    Files are written without fsync; the caller calls `store.barrier()` before signing.
    """
    width = tiles.TILE_WIDTH
    size = reader.size
    depth = max(tiles.levels(size + len(entries)), 1)
    edges = [reader.edge(level) for level in range(depth)]
    bundle: list[bytes] = []
    if edges[0]:
        path = tiles.tile_path(None, size // width, len(edges[0]))
        first = size - len(edges[0])
        bundle = tiles.decode_bundle(store.read(path), len(edges[0]), path=path, first=first)
        if [merkle.leaf_hash(entry) for entry in bundle] != edges[0]:
            raise VerificationError(
                f"{path} does not match its tile; nothing appended",
                hint="run 'reprover log audit' to find the damage",
            )
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + entry).digest() for entry in entries]
    pos = 0
    while pos < len(leaves):
        take = min(width - len(edges[0]), len(leaves) - pos)
        edges[0].extend(leaves[pos : pos + take])
        bundle.extend(entries[pos : pos + take])
        pos += take
        size += take
        if len(edges[0]) == width:
            index = size // width - 1
            store.write(tiles.tile_path(None, index), tiles.encode_bundle(bundle), durable=False)
            bundle = []
            _carry(store, edges, size)
    for level, edge in enumerate(edges):
        if edge:
            index = size // width ** (level + 1)
            path = tiles.tile_path(level, index, len(edge))
            store.write(path, b"".join(edge), durable=False)
    if bundle:
        path = tiles.tile_path(None, size // width, len(bundle))
        store.write(path, tiles.encode_bundle(bundle), durable=False)
    return size


def _carry(store: Store, edges: list[list[bytes]], size: int) -> None:
    """Write each full edge tile, from level 0 up, and carry its root to the level above."""
    level = 0
    while len(edges[level]) == tiles.TILE_WIDTH:
        index = size // tiles.TILE_WIDTH ** (level + 1) - 1
        store.write(tiles.tile_path(level, index), b"".join(edges[level]), durable=False)
        carried = merkle.root_of(edges[level])
        edges[level] = []
        level += 1
        if level == len(edges):
            edges.append([])
        edges[level].append(carried)


def _drop_superseded(store: Store, old: int, new: int) -> None:
    """Remove the partial tiles and bundles of every tile this append made full.

    The spec lets a log delete a partial tile once its full tile exists; until then the
    partial tiles of older checkpoints stay, so a client holding one can still read its tree.
    """
    for level in range(tiles.levels(new)):
        span = tiles.TILE_WIDTH ** (level + 1)
        for index in range(old // span, new // span):
            store.remove_folder(tiles.tile_path(level, index) + ".p")
            if level == 0:
                store.remove_folder(tiles.tile_path(None, index) + ".p")


def find(store: Store, size: int, entry: bytes) -> int | None:
    """The index of the first entry equal to `entry` in the tree of `size`, or None.

    Raises:
        VerificationError: a level-0 tile is missing or malformed.
    """
    wanted = merkle.leaf_hash(entry)
    reader = TreeReader(store, size)
    for index in range((size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        data = reader.tile(0, index)
        at = data.find(wanted)
        while at >= 0 and at % HASH:
            at = data.find(wanted, at + 1)
        if at >= 0:
            return index * tiles.TILE_WIDTH + at // HASH
    return None
