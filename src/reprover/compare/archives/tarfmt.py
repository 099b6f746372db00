"""TAR (ustar, GNU, pax): every header byte labelled, every block accounted for.

Owns: reading a tar stream (plain, or already decompressed by `streams`) into a `Listing`:
members from stdlib `tarfile`, then each member's header block compared as raw fields (name,
mode, uid, gid, size, mtime, checksum, type, link, magic, uname, gname, device, prefix or the
GNU atime/ctime; a number or name with bytes after its NUL is kind hidden: tar never reads
them), its pax records and its extension headers (whose own owner and time, read by no tar,
are kind hidden unless a tar writer's: empty, the member's own, or GNU's `root`); `Hidden`
for a gap between
members, non-zero padding after member data and non-zero bytes after the end-of-archive
marker.
Does not own: decompression (`streams`), comparing two listings (`driver`).

`tarfile` finds the members (pax, GNU long names); the byte accounting around them is done here
because `tarfile` skips padding and stops silently at the first bad header after the first.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import replace
from functools import partial
from typing import Any, BinaryIO, cast

from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Span,
    read_exact,
    when,
)
from reprover.model import Kind

BLOCK = 512
USTAR = (
    ("name", 0, 100), ("mode", 100, 8), ("uid", 108, 8), ("gid", 116, 8), ("size", 124, 12),
    ("mtime", 136, 12), ("checksum", 148, 8), ("type", 156, 1), ("target", 157, 100),
    ("format", 257, 8), ("uname", 265, 32), ("gname", 297, 32), ("device", 329, 16),
)  # fmt: skip
USTAR_TAIL = (("prefix", 345, 155), ("pad", 500, 12))
TEXT = frozenset({"name", "target", "uname", "gname", "prefix"})  # NUL-terminated strings
GNU_TAIL = (("atime", 345, 12), ("ctime", 357, 12), ("gnu", 369, 143))
PAX_KEYS = {
    "mtime": "mtime", "atime": "atime", "ctime": "ctime", "uid": "uid", "gid": "gid",
    "uname": "uname", "gname": "gname",
}  # fmt: skip
KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device", tarfile.FIFOTYPE: "device",
}  # fmt: skip


def is_tar(head: bytes) -> bool:
    """Whether the first block looks like a ustar/GNU/pax header."""
    return len(head) >= 263 and head[257:262] == b"ustar"


OCTAL = re.compile(rb"[0-7]+")


def _octal(raw: bytes) -> int | None:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if raw and raw[0] & 0x80:
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if text and not OCTAL.fullmatch(text):
        return None  # int() also reads "+1_0" and "0o7": spellings GNU tar refuses, so data
    return int(text, 8) if text else 0


def _clean(raw: bytes) -> bool:
    """Whether nothing but NULs and spaces follows a numeric field's first NUL (base-256
    numbers, first bit set, are binary: every byte is the number)."""
    if raw and raw[0] & 0x80:
        return True
    _, nul, tail = raw.partition(b"\0")
    return not nul or not tail.strip(b"\0 ")


def _block_fields(block: bytes, base: int, prefix: str) -> dict[str, Field]:
    gnu = block[257:265] == b"ustar  \0"
    fields = {}
    for key, at, size in (*USTAR, *(GNU_TAIL if gnu else USTAR_TAIL)):
        raw = block[at : at + size]
        kind = Kind.TIMESTAMP if key in ("mtime", "atime", "ctime") else Kind.METADATA
        if key == "pad" and raw.strip(b"\0"):
            kind = Kind.HIDDEN
        show = raw.rstrip(b"\0").decode("latin-1")
        numeric = key in ("mode", "uid", "gid", "mtime", "atime", "ctime", "size", "checksum")
        number = _octal(raw) if numeric else None
        if numeric and (number is None or not _clean(raw)):
            kind = Kind.HIDDEN  # not a number, or bytes after it: data, which no rule allows
        if key in TEXT and raw.partition(b"\0")[2].strip(b"\0"):
            kind = Kind.HIDDEN  # bytes after a name's NUL: no tar reads them, no rule allows them
        if key == "mode" and number is not None:
            show = f"{number:o}"
        elif kind is Kind.TIMESTAMP and number is not None:
            show = when(number)
        fields[prefix + key] = Field(raw, base + at, size, kind, show, number)
    return fields


def _pax_fields(data: bytes, base: int) -> dict[str, Field]:
    """One field per pax record (`pax.mtime`, `pax[SCHILY.xattr...]`)."""
    fields, pos, keys = {}, 0, set()
    while pos < len(data):
        space = data.find(b" ", pos)
        length = _int(data[pos:space]) if space > pos else None
        if (
            length is None
            or length <= 0
            or pos + length > len(data)
            or data[pos + length - 1] != 0x0A
            or data[pos] == 0x30
        ):  # not "LEN KEY=VALUE\n" with LEN in its one spelling: data, which no rule allows
            fields["pax.records"] = Field(data[pos:], base + pos, len(data) - pos, Kind.HIDDEN)
            break
        record = data[pos + len(data[pos:space]) + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        name = key.decode("utf-8", "replace")
        named = name in PAX_KEYS and _well_formed(name, value)
        label = "pax." + PAX_KEYS[name] if named else f"pax[{name}]"
        kind = Kind.TIMESTAMP if name in ("mtime", "atime", "ctime") else Kind.METADATA
        if key in keys or label in fields:  # a key twice (or two that read alike): readers
            label, kind = f"pax[{name}]#{pos}", Kind.HIDDEN  # keep one, the other is data
        keys.add(key)
        fields[label] = Field(value, base + pos, length, kind, value.decode("utf-8", "replace"))
        pos += length
    return fields


PAX_TIME = re.compile(rb"-?\d{1,20}(?:\.\d{1,20})?")  # Python writes repr(float)
PAX_ID = re.compile(rb"\d{1,20}")
PAX_NAME = re.compile(rb"[\x21-\x7e\x80-\xff][\x20-\x7e\x80-\xff]{0,254}")


def _well_formed(name: str, value: bytes) -> bool:
    """Whether a pax time, id or owner name holds only that (else no rule may allow it: digits
    or a 4 KB name under a time or owner record are data)."""
    pattern = PAX_TIME if name.endswith("time") else PAX_ID if name in ("uid", "gid") else PAX_NAME
    return pattern.fullmatch(value) is not None


def _int(raw: bytes) -> int | None:
    return int(raw) if raw.isdigit() else None


def _extensions(f: BinaryIO, start: int, main: int) -> dict[str, Field]:
    """Fields of the extension headers (pax `x`, GNU `L`/`K`) between `start` and `main`.

    A second header of one kind before the same member is all hidden (`pax#2.header.size`,
    `pax#2[comment]`): no writer makes one, and readers disagree on which one wins (Python's
    tarfile takes the first's records, GNU tar the last's), so folding it into the first's
    fields would hide whichever one the comparison did not show.
    """
    fields: dict[str, Field] = {}
    seen: dict[str, int] = {}
    pos = start
    while pos < main:
        block = read_exact(f, pos, BLOCK, "tar")
        kind = chr(block[156])
        name = {"x": "pax", "L": "longname", "K": "longlink"}.get(kind, f"extension[{kind}]")
        seen[name] = seen.get(name, 0) + 1
        ours = _block_fields(block, pos, name + ".header.")
        size = _octal(block[124:136]) or 0
        data = read_exact(f, pos + BLOCK, size, "tar")
        if kind == "x":
            ours.update(_pax_fields(data, pos + BLOCK))
        else:
            ours[name + ".data"] = Field(data, pos + BLOCK, size)
        if seen[name] > 1:
            again = f"{name}#{seen[name]}"
            ours = {again + k[len(name) :]: replace(v, kind=Kind.HIDDEN) for k, v in ours.items()}
        fields.update(ours)
        pos += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
    return fields


def _header_fields(f: BinaryIO, start: int, main: int) -> dict[str, Field]:
    """Fields of a member's extension headers and its main header block at `main`."""
    fields = _extensions(f, start, main)
    fields.update(_block_fields(read_exact(f, main, BLOCK, "tar"), main, ""))
    for key, found in fields.items():
        label, _, owned = key.rpartition(".header.")
        if label and owned in NOBODYS and not _writers(found, fields.get(owned)):
            fields[key] = replace(found, kind=Kind.HIDDEN)
    return fields


NOBODYS = ("uid", "gid", "uname", "gname", "mtime")  # of an extension header: no tar reads them


def _writers(ext: Field, main: Field | None) -> bool:
    """Whether an extension header's owner or time is one a tar writer puts there: empty or
    zero (Python), the member's own (GNU tar's pax headers, libarchive), `root` (GNU tar's
    long-name headers). No tar reads it, so any other value is data an owner or time rule
    would let through."""
    raw = ext.value if isinstance(ext.value, bytes) else b""
    if not raw.strip(b"\0 0") or raw.rstrip(b"\0") == b"root":
        return True
    if main is None:
        return False
    own = main.value if isinstance(main.value, bytes) else b""
    same_number = ext.number is not None and ext.number == main.number
    return same_number or raw.rstrip(b"\0") == own.rstrip(b"\0")


def _zero(f: BinaryIO, start: int, end: int) -> bool:
    f.seek(start)
    left = end - start
    while left > 0:
        block = f.read(min(CHUNK, left))
        if not block:
            return True
        if block.strip(b"\0"):
            return False
        left -= len(block)
    return True


def read_tar(f: BinaryIO, size: int, budget: Budget, listing: Listing) -> Listing:
    """Read the tar stream in `f` (`size` bytes) into `listing` (its container fields kept).

    Raises:
        MalformedArchive: `tarfile` cannot read it.
        LimitHit: a bound of `budget` was reached, or a member is sparse.
    """
    listing.format, listing.prefix = "tar", "tar.member"
    f.seek(0)
    try:
        tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise MalformedArchive(f"tar: {exc}") from exc
    pos = 0
    try:
        while True:
            try:
                info = tar.next()
            except tarfile.TarError as exc:
                raise MalformedArchive(f"tar: {exc}") from exc
            if info is None:
                break
            budget.member(info.name.encode("utf-8", "surrogateescape"))
            if info.issparse():
                raise LimitHit("archive.unsupported", f"sparse member {info.name!r}")
            cast(Any, tar).members.clear()  # memory stays flat: the listing keeps what is needed
            if info.offset != pos:
                listing.hidden.append(Hidden(pos, info.offset - pos, "bytes between members"))
            main = info.offset_data - BLOCK
            header = read_exact(f, info.offset, info.offset_data - info.offset, "tar")
            # every member's data is compared, whatever its type: GNU tar extracts an unknown
            # typeflag as a regular file, so data under one is content, not padding
            end = info.offset_data + (info.size + BLOCK - 1) // BLOCK * BLOCK
            if not _zero(f, info.offset_data + info.size, end):
                listing.hidden.append(
                    Hidden(info.offset_data + info.size, end - info.offset_data - info.size,
                           f"non-zero padding after {info.name!r}")
                )  # fmt: skip
            member = Member(
                info.name,
                KINDS.get(info.type, "other"),
                partial(_header_fields, f, info.offset, main),
                info.offset,
                target=info.linkname or None,
                stored=Span(f, info.offset_data, info.size),
                key=hashlib.sha256(header).digest(),  # the fields are a function of these bytes
                plain=True,
            )
            listing.add(member)
            pos = end
    finally:
        tar.close()
    if not _zero(f, pos, size):
        listing.hidden.append(Hidden(pos, size - pos, "non-zero bytes after the end-of-archive"))
    return listing
