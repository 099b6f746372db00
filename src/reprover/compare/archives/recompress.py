"""Whether a compressed stream is exactly what the rebuild's compressor makes of its content.

Owns: the checks that close the encoding channel of a compressed stream whose content differs
from the rebuild's. Such a stream's compressed bytes must differ too, so they are a
consequence of the content change; but an encoder chooses freely (deflate block boundaries,
empty or stored blocks, which matches to take; the same in xz, bzip2 and zstd), and those
choices carry data no comparison of content sees (one empty deflate block per bit carries 300
bytes in a 4 KB stream that inflates to the same tar). A check finds the encoder settings that
reproduce the rebuilt stream, byte for byte, from the rebuilt stream's own content, then
requires the released stream to be exactly what those settings make of the released content.
Both are streamed: decompress (at most 1 MiB of output at a time; zstd fed 2 KiB at a time,
as `streams` does), compress again, compare as the bytes come, stop at the first difference.
Encoders tried: zlib levels 1-9 (memory levels 8 and 9) for gzip and ZIP deflate;
liblzma presets 0-9 and 0e-9e with the rebuild's integrity check for xz; libbzip2 at the block
size the header names; libzstd levels 1-22 with the rebuild's frame flags for one-frame zstd.
A rebuild made by another encoder (GNU gzip's own deflate, 7-Zip, multi-threaded xz or zstd,
a zlib fork) is not reproduced, so the released encoding cannot be checked and the difference
fails closed: only `archive.compression` allows it. So do ZIP methods other than stored and
deflate (not reproduced here). CAB folders (`cab.compression.dataN`) are checked against gcab's
blocks (`cabzip`: wixl's embedded cabinets); Microsoft's MSZIP is not reproduced.

`member_check` and `stream_check` make the check for a ZIP member and for a compressed stream
(`<fmt>.compression.stream`); the driver registers one wherever compressed bytes differ
because content does, and `verdict` runs them only when everything else is allowed (a
check costs up to one compression per encoder tried, each stopped at its first difference).
Does not own: when a check is needed (`driver`, `verdict`), reading formats.
"""

from __future__ import annotations

import bz2
import lzma
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import zstandard

from reprover.compare.archives.cabzip import gcab_encoding
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    MalformedArchive,
    Member,
    Opener,
    Span,
    byte_range,
)

LEVELS = (9, 6, 1, 2, 3, 4, 5, 7, 8)  # the common ones first; each attempt stops early
XZ_PRESETS = (6, 9, 6 | lzma.PRESET_EXTREME, 9 | lzma.PRESET_EXTREME, 0, 1, 2, 3, 4, 5, 7, 8)
TOOL_XZ_PRESETS = ("6", "9", "6e", "9e")  # each a whole compression: the common ones only
TOOL_ZSTD_LEVELS = (3, 19)
ZSTD_LEVELS = (3, 19, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22)


class Encoding:
    """The outcome of a check: whether the released stream is the encoder's own, and why."""

    def __init__(self, canonical: bool, detail: str) -> None:
        self.canonical, self.detail = canonical, detail


Encoder = Callable[[], Any]  # a fresh compressor: .compress(bytes), .flush()
Decoder = Callable[[], Any]  # a fresh decompressor: .decompress(bytes), .eof, .unused_data


ZSTD_SLICE = 2048  # zstd cannot bound one call's output: feed it little (<= 64 MiB out)
ZSTD_OBJECT = type(zstandard.ZstdDecompressor().decompressobj())


def _expand(inflate: Any, block: bytes) -> Iterator[bytes]:
    """`inflate`'s output for `block`, at most CHUNK bytes at a time (or what a ZSTD_SLICE of
    input makes), so memory stays flat however far the content expands (a 300 KB gzip of
    zeros is 300 MB of content: one unbounded call held it all)."""
    if isinstance(inflate, ZSTD_OBJECT):
        for at in range(0, len(block), ZSTD_SLICE):  # zstd: no bound on one call's output
            out = inflate.decompress(block[at : at + ZSTD_SLICE])
            if out:
                yield out
        return
    if hasattr(inflate, "unconsumed_tail"):  # zlib
        data = block
        while data and not inflate.eof:
            out = inflate.decompress(data, CHUNK)
            data = inflate.unconsumed_tail
            if out:
                yield out
        return
    data = block  # lzma, bz2
    while not inflate.eof:
        out = inflate.decompress(data, CHUNK)
        data = b""
        if out:
            yield out
        if inflate.needs_input:
            return


def _reproduces(raw: Iterator[bytes], decoder: Decoder, encoder: Encoder) -> bool:
    """Whether `encoder` compresses the content of the stream `raw` back into `raw`."""
    inflate, deflate = decoder(), encoder()
    expected, made = bytearray(), bytearray()

    def agree() -> bool:
        n = min(len(expected), len(made))
        if expected[:n] != made[:n]:
            return False
        del expected[:n], made[:n]
        return True

    try:
        for block in raw:
            if inflate.eof:
                return False  # bytes after the end of the stream
            expected += block
            for piece in _expand(inflate, block):
                made += deflate.compress(piece)
                if not agree():
                    return False
        if not inflate.eof or inflate.unused_data:
            return False
        made += deflate.flush()
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, zstandard.ZstdError):
        return False
    return agree() and not expected and not made


class Tool:
    """An encoder that is a program (`xz -T2`, `zstd`: multi-threaded or CLI framing that
    the libraries' Python bindings do not make), fed the content from a private file."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def reproduces(self, raw: Opener, decoder: Decoder) -> bool:
        """Whether the program compresses the content of the stream `raw` back into `raw`.

        Raises:
            MalformedArchive: an archive ends inside the stream.
        """
        path = shutil.which(self.argv[0])
        if path is None:
            return False
        with tempfile.TemporaryFile(prefix="reprover-recompress-") as plain:
            inflate = decoder()
            try:
                for block in raw():
                    for piece in _expand(inflate, block):
                        plain.write(piece)
            except (lzma.LZMAError, EOFError, ValueError, zstandard.ZstdError):
                return False
            if not inflate.eof or inflate.unused_data:
                return False
            plain.seek(0)
            argv = [path, *self.argv[1:]]  # fixed arguments; the content goes to stdin
            with subprocess.Popen(
                argv, stdin=plain, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            ) as proc:
                assert proc.stdout is not None  # noqa: S101 - Popen with PIPE
                same = _same_stream(raw(), proc.stdout)
                proc.kill()
            return same and proc.returncode in (0, -9)


def _same_stream(raw: Iterator[bytes], out: IO[bytes]) -> bool:
    for block in raw:
        if out.read(len(block)) != block:
            return False
    return out.read(1) == b""


def _attempt(raw: Opener, decoder: Decoder, encoder: Encoder | Tool) -> bool:
    if isinstance(encoder, Tool):
        return encoder.reproduces(raw, decoder)
    return _reproduces(raw(), decoder, encoder)


def _first(
    released: Opener,
    rebuilt: Opener,
    decoder: Decoder,
    encoders: Sequence[tuple[str, Encoder | Tool]],
) -> Encoding:
    """The first encoder that reproduces the rebuilt stream must reproduce the released one."""
    for label, encoder in encoders:
        if _attempt(rebuilt, decoder, encoder):
            if _attempt(released, decoder, encoder):
                return Encoding(True, f"{label} makes both streams from their content")
            return Encoding(
                False,
                f"the released stream is not what {label} (which makes the rebuilt stream) "
                "makes of its content: its encoding choices could carry data",
            )
    return Encoding(
        False,
        "the rebuilt stream is not what any encoder tried makes of its content, so the "
        "released stream's encoding choices (which could carry data) cannot be checked",
    )


def deflate_encoding(released: Opener, rebuilt: Opener) -> Encoding:
    """Check the released raw deflate stream against the rebuild's compressor.

    `released` and `rebuilt` stream each raw deflate stream (no zlib or gzip header or
    trailer); each is read once per level tried, and each attempt stops at its first
    difference.

    Raises:
        MalformedArchive: an archive ends inside a stream.
    """

    def deflater(level: int, memory: int) -> Encoder:
        return lambda: zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, memory)

    encoders = [(f"zlib level {level}", deflater(level, 8)) for level in LEVELS]
    encoders += [(f"zlib level {level}, memory level 9", deflater(level, 9)) for level in LEVELS]
    return _first(released, rebuilt, lambda: zlib.decompressobj(-zlib.MAX_WBITS), encoders)


def xz_encoding(released: Opener, rebuilt: Opener, head: bytes) -> Encoding:
    """Check an xz stream against liblzma's presets, with the rebuild's integrity check.

    Raises:
        MalformedArchive: an archive ends inside a stream.
    """
    check = head[7] & 0x0F if len(head) >= 8 else lzma.CHECK_CRC64

    def preset(p: int) -> Encoder:
        return lambda: lzma.LZMACompressor(lzma.FORMAT_XZ, check=check, preset=p)

    encoders: list[tuple[str, Encoder | Tool]] = [
        (f"xz preset {p & 0xF}{'e' if p & lzma.PRESET_EXTREME else ''}", preset(p))
        for p in XZ_PRESETS
    ]
    names = {lzma.CHECK_NONE: "none", lzma.CHECK_CRC32: "crc32", lzma.CHECK_SHA256: "sha256"}
    kind = names.get(check, "crc64")
    encoders += [  # dpkg-deb and xz -T: the multi-threaded encoder (sizes in block headers)
        (
            f"xz -T2 -{p}",
            Tool(["xz", "-T2", f"-{p}", f"--check={kind}", "-c", "-q"]),
        )
        for p in TOOL_XZ_PRESETS
    ]
    return _first(released, rebuilt, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), encoders)


def bz2_encoding(released: Opener, rebuilt: Opener, head: bytes) -> Encoding:
    """Check a bzip2 stream against libbzip2 at the block size its header names.

    Raises:
        MalformedArchive: an archive ends inside a stream.
    """
    level = head[3] - ord("0") if len(head) >= 4 and 0x31 <= head[3] <= 0x39 else 9
    encoder: Encoder = lambda: bz2.BZ2Compressor(level)  # noqa: E731 - one line
    return _first(released, rebuilt, bz2.BZ2Decompressor, [(f"bzip2 -{level}", encoder)])


def zstd_encoding(released: Opener, rebuilt: Opener, head: bytes) -> Encoding:
    """Check a one-frame zstd stream against libzstd's levels, with the rebuild's frame flags
    (checksum; content size, written only when the encoder knew it).

    Raises:
        MalformedArchive: an archive ends inside a stream.
    """
    flags = head[4] if len(head) >= 5 else 0
    checksum, size = bool(flags & 0x04), _zstd_content_size(head)

    def level(n: int) -> Encoder:
        cctx = zstandard.ZstdCompressor(level=n, write_checksum=checksum,
                                        write_content_size=size is not None)  # fmt: skip
        return lambda: cctx.compressobj(size=-1 if size is None else size)

    encoders: list[tuple[str, Encoder | Tool]] = [
        (f"zstd level {n}", level(n)) for n in ZSTD_LEVELS
    ]
    flag = "" if checksum else "--no-check"
    encoders += [  # the zstd program and dpkg-deb frame content differently from the bindings
        (f"zstd -{n}", Tool(["zstd", f"-{n}", "-c", "-q", *([flag] if flag else [])]))
        for n in TOOL_ZSTD_LEVELS
    ]
    decoder = lambda: zstandard.ZstdDecompressor().decompressobj()  # noqa: E731 - one line
    return _first(released, rebuilt, decoder, encoders)


def _zstd_content_size(head: bytes) -> int | None:
    """The frame content size a zstd frame header declares, or None."""
    if len(head) < 5:
        return None
    flags = head[4]
    fcs_code, single, dict_code = flags >> 6, bool(flags & 0x20), flags & 0x03
    width = (1 if single else 0, 2, 4, 8)[fcs_code]
    if width == 0:
        return None
    at = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_code]
    if len(head) < at + width:
        return None
    value = int.from_bytes(head[at : at + width], "little")
    return value + 256 if width == 2 else value


Check = Callable[[], Encoding]
CAB_FOLDER = re.compile(r"cab\.compression\.data(\d+)")
STORED, DEFLATED = 0, 8
GZIP_TRAILER = 8


def encoding_region(prefix: str, key: str) -> str:
    """The region of a stream's encoding, from a compressed-bytes field: `compression.size`
    of `zip.entry[a].` -> `zip.entry[a].compression.encoding`, `gzip.compression.stream` ->
    `gzip.compression.encoding`."""
    head = key[: key.index("compression.")] if "compression." in key else ""
    return f"{prefix}{head}compression.encoding"


def member_check(fmt: str, a: Member, b: Member) -> Check | None:
    """The encoding check of two members of a `fmt` archive whose content differs, or None
    when their stored bytes are not compressed (the content is the stored bytes)."""
    if fmt != "zip":
        return None  # other formats' members are stored as they are; their containers'
        # compressed streams are checked by `stream_check`
    methods = (_method(a), _method(b))
    if methods == (STORED, STORED):
        return None
    if methods == (DEFLATED, DEFLATED) and a.stored is not None and b.stored is not None:
        ra, rb = _opener(a.stored), _opener(b.stored)
        return lambda: deflate_encoding(ra, rb)
    return _unchecked(f"ZIP compression methods {methods[0]} and {methods[1]}")


def stream_check(key: str, a: Field, b: Field, files: tuple[Path, Path]) -> Check:
    """The encoding check of the compressed stream field `key` (released `a`, rebuilt `b`)."""
    fmt = key.split(".", 1)[0]
    if key == "gzip.compression.stream":
        ra = _file_range(files[0], a.offset, a.length - GZIP_TRAILER)
        rb = _file_range(files[1], b.offset, b.length - GZIP_TRAILER)
        return lambda: deflate_encoding(ra, rb)
    folder = CAB_FOLDER.fullmatch(key)
    if folder is not None:
        index = int(folder.group(1))
        return lambda: Encoding(*gcab_encoding(files, index, (a, b)))
    checks = {"xz": xz_encoding, "bz2": bz2_encoding, "zstd": zstd_encoding}
    if key == f"{fmt}.compression.stream" and fmt in checks:
        ra, rb = (
            _file_range(files[0], a.offset, a.length),
            _file_range(files[1], b.offset, b.length),
        )

        def check() -> Encoding:
            with open(files[1], "rb") as f:  # noqa: PTH123 - a path, read once
                f.seek(b.offset)
                head = f.read(32)
            return checks[fmt](ra, rb, head)

        return check
    return _unchecked(fmt)


def all_of(first: Check, second: Check) -> Check:
    """One check of two streams under one region (a cabinet's folders): canonical when both
    are; otherwise the first one's reason."""

    def check() -> Encoding:
        one = first()
        return second() if one.canonical else one

    return check


def _method(m: Member) -> int | None:
    identity = m.identity
    return identity[0] if isinstance(identity, tuple) and identity else None


def _unchecked(what: str) -> Check:
    return lambda: Encoding(
        False,
        f"{what}: the encoder's choices (which could carry data) are not reproduced here, so "
        "compressed bytes that differ are allowed only by archive.compression",
    )


def _opener(stored: Span | Opener) -> Opener:
    return stored.blocks if isinstance(stored, Span) else stored


def _file_range(path: Path, start: int, size: int) -> Opener:
    """`byte_range` of a file opened for each read (the check runs after the listing's own
    handles may be gone)."""

    def blocks() -> Iterator[bytes]:
        if size < 0:
            raise MalformedArchive("compressed stream shorter than its trailer")
        with path.open("rb") as f:
            yield from byte_range(f, start, size, "compressed stream")()

    return blocks
