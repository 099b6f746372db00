"""Which archive format a file is, and opening it as a `Listing`.

Owns: `sniff` (format from the first bytes, and for the ZIP family from the name too, so that
a ZIP with data prepended, such as one appended to a PE, is still read as a ZIP and its prefix
reported) and `open_listing` (dispatch to the format module; compressed streams are unwrapped
into a private temporary file first, their header kept as container fields).
Does not own: any format's details (one module each), comparing (`driver`).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from typing import BinaryIO

from reprover.compare.archives.arfmt import MAGIC as AR_MAGIC
from reprover.compare.archives.arfmt import read_ar
from reprover.compare.archives.cabfmt import MAGIC as CAB_MAGIC
from reprover.compare.archives.cabfmt import read_cab
from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import Listing, Member, Opener, Span, byte_range
from reprover.compare.archives.ole import MAGIC as OLE_MAGIC
from reprover.compare.archives.ole import read_ole
from reprover.compare.archives.rpmfmt import MAGIC as RPM_MAGIC
from reprover.compare.archives.rpmfmt import read_rpm
from reprover.compare.archives.streams import MAGIC as STREAM_MAGIC
from reprover.compare.archives.streams import stream_format, unwrap
from reprover.compare.archives.tarfmt import is_tar, read_tar
from reprover.compare.archives.zipfmt import read_zip

ZIP_NAMES = (".zip", ".whl", ".jar", ".war", ".ear", ".apk", ".aar", ".nupkg", ".egg", ".xpi")
STREAM_SUFFIXES = {"gzip": (".gz", ".tgz"), "xz": (".xz", ".txz"), "bz2": (".bz2", ".tbz2"),
                   "zstd": (".zst", ".tzst")}  # fmt: skip
HEAD = 512
STREAMS = frozenset(STREAM_MAGIC.values())  # compressed-stream formats: one member, expanded


def sniff(head: bytes, name: str) -> str | None:  # noqa: PLR0911 - one return per format
    """The archive format of a file starting with `head` (at least 512 bytes if it has them)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    stream = stream_format(head)
    if stream is not None:
        return stream
    if is_tar(head):
        return "tar"
    if head.startswith(AR_MAGIC):
        return "ar"
    if head.startswith(OLE_MAGIC):
        return "ole"
    if head.startswith(CAB_MAGIC):
        return "cab"
    if head.startswith(RPM_MAGIC):
        return "rpm"
    if name.lower().endswith(ZIP_NAMES):
        return "zip"
    return None


def head_of(f: BinaryIO) -> bytes:
    """The first bytes of an open file, for `sniff`."""
    f.seek(0)
    return f.read(HEAD)


def open_listing(  # noqa: PLR0911 - one return per format
    fmt: str, f: BinaryIO, budget: Budget, stack: ExitStack, hint: str
) -> Listing:
    """Read the archive in `f` as `fmt`. `hint` names a lone compressed member (`x.gz` -> `x`).

    Temporary files live until `stack` closes.

    Raises:
        MalformedArchive: the bytes are not a well-formed `fmt` archive.
        LimitHit: a bound of `budget` was reached.
    """
    size = os.fstat(f.fileno()).st_size
    if fmt == "zip":
        return read_zip(f, size, budget)
    if fmt == "tar":
        return read_tar(f, size, budget, Listing("tar", "tar.member"))
    if fmt == "ar":
        return read_ar(f, size, budget)
    if fmt == "ole":
        return read_ole(f, size, budget)
    if fmt == "cab":
        return read_cab(f, size, budget, stack)
    if fmt == "rpm":
        return read_rpm(f, size, budget, stack)
    tmp = stack.enter_context(tempfile.TemporaryFile(prefix="reprover-stream-"))  # noqa: SIM115
    fields, hidden = unwrap(fmt, f, size, tmp, budget)
    inner = tmp.tell()
    tmp.seek(0)
    listing = Listing(fmt, f"{fmt}.member", fields=fields, hidden=hidden,
                      inner=Span(tmp, 0, inner))  # fmt: skip
    if is_tar(tmp.read(HEAD)):
        listing.notes.append(f"tar offsets are in the {fmt}-decompressed stream")
        return read_tar(tmp, inner, budget, listing)
    name = _strip(hint, fmt)
    opener: Opener = byte_range(tmp, 0, inner, "decompressed stream")
    listing.add(Member(name, "file", {}, 0, opener=opener))
    return listing


def _strip(name: str, fmt: str) -> str:
    """The member name of a lone compressed file: `x.gz` -> `x`, `x.tgz` -> `x.tar`."""
    base = name.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    for suffix in STREAM_SUFFIXES.get(fmt, ()):
        if base.lower().endswith(suffix):
            stem = base[: -len(suffix)]
            return stem + ".tar" if suffix.startswith(".t") else stem
    return base + ".data"
