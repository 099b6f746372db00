"""Compressed streams (gzip, xz, bzip2, zstd): decompressed to a private file, header kept.

Owns: `unwrap`, which streams one compressed file into a temporary file (bounded by the
budget: a bomb stops at the limit, memory stays flat), and returns the container's metadata
(`gzip.header.mtime`, the gzip name, flags, XFL and OS bytes, the header CRC (hidden unless it
is the header's), and a digest of the compressed bytes, `<format>.compression.stream`) and any
bytes after the compressed stream as `Hidden`.
Does not own: what the decompressed bytes hold (`tarfmt`, or a single member), comparing.

The gzip header is read here rather than by `gzip.GzipFile`, which hides the header fields and
silently reads a second concatenated member; the body is inflated with ISA-L (`isal`, the
same raw deflate and CRC-32 as `zlib`, about twice as fast: inflating is most of the time of
comparing a .deb). xz, bzip2 and zstd use `lzma`, `bz2` and `zstandard`; a second stream after
the first is reported hidden.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from isal import isal_zlib

from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import CHUNK, Field, Hidden, MalformedArchive, when
from reprover.model import Kind

# isal's stubs type `error` as an instance; at run time it is the exception class it raises
INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]

MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bz2",
    b"\x28\xb5\x2f\xfd": "zstd",
}
ZSTD_FEED = 2048  # zstd cannot bound one call's output: feed it little (<= 64 MiB out)
FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16


def stream_format(head: bytes) -> str | None:
    """The compressed-stream format `head` starts with, or None."""
    return next((fmt for magic, fmt in MAGIC.items() if head.startswith(magic)), None)


def _cstring(f: BinaryIO, limit: int = 4096) -> bytes:
    out = bytearray()
    while True:
        ch = f.read(1)
        if not ch:
            raise MalformedArchive("gzip header truncated")
        if ch == b"\0":
            return bytes(out)
        out += ch
        if len(out) > limit:
            raise MalformedArchive("gzip header string longer than 4096 bytes")


def _gzip_header(f: BinaryIO, fields: dict[str, Field]) -> None:
    head = f.read(10)
    if len(head) != 10 or head[:3] != b"\x1f\x8b\x08":
        raise MalformedArchive("not a deflate gzip stream")
    flags, mtime, xfl, os_byte = struct.unpack_from("<BIBB", head, 3)
    fields["gzip.header.flags"] = Field(flags & ~FTEXT, 3, 1)
    fields["gzip.header.text"] = Field(flags & FTEXT, 3, 1)
    fields["gzip.header.mtime"] = Field(mtime, 4, 4, Kind.TIMESTAMP, when(mtime))
    fields["gzip.header.compression.xfl"] = Field(xfl, 8, 1)
    fields["gzip.header.compression.os"] = Field(os_byte, 9, 1)
    if flags & FEXTRA:
        (size,) = struct.unpack("<H", f.read(2))
        at = f.tell()
        fields["gzip.header.extra"] = Field(f.read(size), at, size)
    for flag, key in ((FNAME, "gzip.header.name"), (FCOMMENT, "gzip.header.comment")):
        if flags & flag:
            at = f.tell()
            value = _cstring(f)
            fields[key] = Field(value, at, len(value) + 1, show=value.decode("latin-1"))
    if flags & FHCRC:  # CRC-32 of the header's bytes, low half: a consequence, or else data
        at = f.tell()
        f.seek(0)
        header = f.read(at)
        raw = f.read(2)
        if len(raw) != 2:
            raise MalformedArchive("gzip header truncated")
        (crc,) = struct.unpack("<H", raw)
        kind = Kind.METADATA if crc == isal_zlib.crc32(header) & 0xFFFF else Kind.HIDDEN
        fields["gzip.header.checksum"] = Field(crc, at, 2, kind, f"{crc:#06x}")
    if flags & 0xE0:
        raise MalformedArchive("gzip header has reserved flags set")


class _Gzip:
    def __init__(self) -> None:
        self.engine = isal_zlib.decompressobj(-15)
        self.crc = 0
        self.size = 0

    def expand(self, block: bytes) -> Iterator[bytes]:
        data = block
        while data and not self.engine.eof:
            out = self.engine.decompress(data, CHUNK)
            data = self.engine.unconsumed_tail
            self.crc = isal_zlib.crc32(out, self.crc)
            self.size += len(out)
            yield out

    @property
    def eof(self) -> bool:
        return self.engine.eof

    @property
    def unused(self) -> bytes:
        return self.engine.unused_data


Expand = Callable[[bytes], Iterator[bytes]]


class _Engine(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


def _engine(fmt: str) -> tuple[Expand, _Engine]:
    """A bounded expander for `fmt` and the engine behind it (for `eof` and `unused_data`)."""
    if fmt == "zstd":
        import zstandard  # noqa: PLC0415 - only for zstd streams

        zd = zstandard.ZstdDecompressor().decompressobj()

        def zexpand(block: bytes) -> Iterator[bytes]:
            try:
                out = zd.decompress(block)
            except zstandard.ZstdError as exc:
                raise ValueError(str(exc)) from exc
            if out:
                yield out

        return zexpand, zd
    engine: lzma.LZMADecompressor | bz2.BZ2Decompressor
    if fmt == "xz":
        engine = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif fmt == "bz2":
        engine = bz2.BZ2Decompressor()
    else:
        raise MalformedArchive(f"unknown stream format {fmt}")

    def expand(block: bytes) -> Iterator[bytes]:
        data = block
        while not engine.eof:
            out = engine.decompress(data, CHUNK)
            data = b""
            if out:
                yield out
            if engine.needs_input:
                return

    return expand, engine


def unwrap(
    fmt: str, f: BinaryIO, size: int, out: BinaryIO, budget: Budget
) -> tuple[dict[str, Field], list[Hidden]]:
    """Decompress the `fmt` stream in `f` (`size` bytes) into `out`.

    Returns its fields and its hidden bytes. The decompressed bytes are not hashed: whether
    two sides expanded to the same bytes is found by comparing the two files (`driver`).

    Raises:
        MalformedArchive: the stream is corrupt or truncated.
        LimitHit: the expanded bytes exceed the budget.
    """
    fields: dict[str, Field] = {}
    hidden: list[Hidden] = []
    f.seek(0)
    if fmt == "gzip":
        _gzip_header(f, fields)
    body_start = f.tell()
    raw = hashlib.sha256()
    gz = _Gzip() if fmt == "gzip" else None
    expand, engine = _engine(fmt) if gz is None else (gz.expand, gz.engine)
    feed = ZSTD_FEED if fmt == "zstd" else CHUNK
    pos, unused, done = body_start, b"", False
    while not done and pos < size:
        block = f.read(min(feed, size - pos))
        if not block:
            break
        try:
            for piece in expand(block):
                budget.spend(len(piece))
                out.write(piece)
        except (INFLATE_ERROR, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise MalformedArchive(f"{fmt}: {exc}") from exc
        if engine.eof:
            unused, done = engine.unused_data, True
        raw.update(memoryview(block)[: len(block) - len(unused)])  # the stream's own bytes
        pos += len(block)
    if not done:
        raise MalformedArchive(f"{fmt} stream truncated")
    end = pos - len(unused)
    if gz is not None:
        f.seek(end)
        trailer = f.read(8)
        if len(trailer) != 8:
            raise MalformedArchive("gzip trailer truncated")
        crc, isize = struct.unpack("<II", trailer)
        if crc != gz.crc or isize != gz.size & 0xFFFFFFFF:
            raise MalformedArchive("gzip CRC or size does not match its content")
        end += 8
    fields[f"{fmt}.compression.stream"] = Field(raw.hexdigest(), body_start, end - body_start)
    if end < size:
        hidden.append(Hidden(end, size - end, f"bytes after the end of the {fmt} stream"))
    out.flush()
    return fields, hidden
