"""ar archives (Debian .deb: `debian-binary`, `control.tar.*`, `data.tar.*`).

Owns: reading a common-format ar archive into a `Listing`: each 60-byte member header's raw
name, mtime, uid, gid, mode and size as fields, member data streamed, and as `Hidden` a pad
byte that is not a newline and bytes after the last member. The tar members of a .deb are
opened by the recursion driver (`x.deb!data.tar.xz!./usr/bin/x`).
Does not own: comparing (`driver`).

Own parser: the format is a fixed 60-byte header per member and Python has no ar reader.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import (
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Span,
    decode_name,
    when,
)
from reprover.model import Kind

MAGIC = b"!<arch>\n"
DECIMAL, OCTAL = re.compile(rb"[0-9]+"), re.compile(rb"[0-7]+")
HEADER = 60
FIELDS = (("name.raw", 0, 16), ("mtime", 16, 12), ("uid", 28, 6), ("gid", 34, 6),
          ("mode", 40, 8), ("size", 48, 10))  # fmt: skip


def _number(raw: bytes, base: int) -> int | None:
    """A header number as ar writes it: digits of `base`, padded with spaces, else None
    (`int` also reads "+1_0" and tabs: other spellings of one number, which carry data)."""
    text = raw.strip(b" ")
    if text and not (OCTAL if base == 8 else DECIMAL).fullmatch(text):
        return None
    return int(text, base) if text else 0


def read_ar(f: BinaryIO, size: int, budget: Budget) -> Listing:
    """Read the ar archive in `f` (`size` bytes).

    Raises:
        MalformedArchive: a header is malformed or a member runs past the end.
        LimitHit: a bound of `budget` was reached.
    """
    listing = Listing("ar", "ar.member")
    f.seek(0)
    if f.read(8) != MAGIC:
        raise MalformedArchive("not an ar archive")
    pos = 8
    while pos < size:
        f.seek(pos)
        head = f.read(HEADER)
        if len(head) < HEADER or head[58:60] != b"`\n":
            listing.hidden.append(Hidden(pos, size - pos, "bytes after the last ar member"))
            break
        length = _number(head[48:58], 10)
        if length is None or pos + HEADER + length > size:
            raise MalformedArchive(f"ar member at {pos} has a bad size")
        raw_name = head[:16].rstrip(b" ")
        name = decode_name(
            raw_name.removesuffix(b"/") if raw_name not in (b"/", b"//") else raw_name
        )
        budget.member(raw_name)
        fields = {}
        for key, at, width in FIELDS:
            raw = head[at : at + width]
            number = _number(raw, 8 if key == "mode" else 10) if key != "name.raw" else None
            kind = Kind.TIMESTAMP if key == "mtime" else Kind.METADATA
            if key != "name.raw" and number is None:
                kind = Kind.HIDDEN  # not a number: data, which no rule allows
            show = raw.decode("latin-1").rstrip()
            if key == "mtime" and number is not None:
                show = when(number)
            elif key == "mode" and number is not None:
                show = f"{number:o}"
            fields[key] = Field(raw, pos + at, width, kind, show, number)
        data = pos + HEADER
        member = Member(name, "file", fields, pos, stored=Span(f, data, length), key=head,
                        plain=True)  # fmt: skip
        listing.add(member)
        pos = data + length
        if length % 2:
            f.seek(pos)
            if f.read(1) != b"\n":
                listing.hidden.append(
                    Hidden(pos, 1, f"ar pad byte after {name!r} is not a newline")
                )
            pos += 1
    return listing
