"""C2SP tlog-tiles layout: tile paths, tile widths, entry bundles and oversized entries.

Owns: the path of hash tile `tile/<L>/<N>[.p/<W>]` and entry bundle `tile/entries/<N>[.p/<W>]`
(N in 3-digit elements, all but the last prefixed with `x`), which tiles a tree of a given
size has and how wide, the uint16 length-prefixed bundle encoding, and the digest record that
stands in the log for an entry too large for a bundle.
Does not own: reading or writing files (see `reprover.tlog.store`) or hashing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from reprover.errors import VerificationError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY = 0xFFFF
BLOB_DIR = "blobs"
_DIGEST_RECORD = re.compile(rb"reprover/tlog-blob/v1\nsha256 ([0-9a-f]{64})\nsize ([1-9][0-9]*)\n")


def index_path(index: int) -> str:
    """`N` as zero-padded 3-digit path elements, all but the last prefixed with `x`.

    >>> index_path(1234067)
    'x001/x234/067'
    """
    if index < 0:
        raise ValueError(f"negative tile index {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path of hash tile `index` at `level`, or of entry bundle `index` when level is None.

    Raises:
        ValueError: the width is not 1..256.
    """
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not between 1 and {TILE_WIDTH}")
    name = "entries" if level is None else str(level)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{name}/{index_path(index)}{suffix}"


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes tile `index` at `level` holds in a tree of `size` entries (0: none)."""
    span: int = TILE_WIDTH**level
    full = size // (span * TILE_WIDTH)
    if index < full:
        return TILE_WIDTH
    if index == full:
        return (size // span) % TILE_WIDTH
    return 0


def levels(size: int) -> int:
    """How many tile levels a tree of `size` entries has (0 for an empty tree)."""
    count = 0
    while size >= TILE_WIDTH**count and size:
        count += 1
    return count


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Entries as big-endian uint16 length-prefixed records.

    Raises:
        ValueError: an entry is longer than 65535 bytes.
    """
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_bundle(data: bytes, count: int, *, path: str, first: int) -> list[bytes]:
    """Split an entry bundle that must hold exactly `count` entries.

    Args:
        data: the bundle's bytes.
        count: the number of entries it must hold.
        path: its path, for messages.
        first: the index of its first entry, for messages.

    Raises:
        VerificationError: it is truncated, or has bytes after its last entry; the message
            names the first entry that cannot be read.
    """
    entries: list[bytes] = []
    offset = 0
    view = memoryview(data)
    for _ in range(count):
        if offset + 2 > len(data):
            break
        length = int.from_bytes(view[offset : offset + 2], "big")
        if offset + 2 + length > len(data):
            break
        entries.append(bytes(view[offset + 2 : offset + 2 + length]))
        offset += 2 + length
    if len(entries) < count:
        raise VerificationError(
            f"entry bundle {path} is truncated: entry {first + len(entries)} cannot be read"
        )
    if offset != len(data):
        raise VerificationError(
            f"entry bundle {path} has {len(data) - offset} bytes after entry {first + count - 1}"
        )
    return entries


def digest_record(content: bytes) -> bytes:
    """The entry that stands in the log for content too large for a bundle."""
    digest = hashlib.sha256(content).hexdigest()
    return f"reprover/tlog-blob/v1\nsha256 {digest}\nsize {len(content)}\n".encode()


def entry_for(content: bytes) -> bytes:
    """The log entry for a file: its bytes, or its digest record when too large.

    A small file that itself looks like a digest record is logged by its digest record too,
    so every digest record in the log names content kept next to it (and a submitted file
    cannot make the audit look for content that was never stored).
    """
    if len(content) <= MAX_ENTRY and _DIGEST_RECORD.fullmatch(content) is None:
        return content
    return digest_record(content)


def blob_digest(entry: bytes) -> tuple[str, int] | None:
    """(sha256 hex, size) when `entry` is a digest record, else None."""
    match = _DIGEST_RECORD.fullmatch(entry)
    if match is None:
        return None
    return match.group(1).decode(), int(match.group(2))


def blob_path(sha256_hex: str) -> str:
    """Where the content of an oversized entry is kept, by content address, next to the log."""
    return f"{BLOB_DIR}/{sha256_hex}"
