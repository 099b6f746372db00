"""What a format module reads from one archive: members, metadata fields and hidden bytes.

Owns: the plain values every format module returns (`Listing`, `Member`, `Field`, `Hidden`),
`quote` (member names are data: shown escaped, never used as paths) and `MalformedArchive`.
Does not own: reading any format (one module per format), comparing two listings (`driver`).

A `Field` is one metadata value with the byte range it came from, keyed by a short name whose
last part decides which policy rule may allow it (`mtime`, `uid`, `mode`, `compression`, ...).
A `Hidden` is a byte range of the archive that no member or header accounts for, or a
structure that disagrees with itself; it is never allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from reprover.model import Kind

CHUNK = 1 << 20
SAFE_NAME = re.compile(r"[^%!\[\]\x00-\x1f\x7f\udc80-\udcff]*")  # nothing `quote` escapes

Opener = Callable[[], Iterator[bytes]]


class MalformedArchive(Exception):  # noqa: N818 - a finding about the input
    """The bytes are not a well-formed archive of the format they claim."""


def read_exact(f: BinaryIO, offset: int, size: int, what: str = "archive") -> bytes:
    """`size` bytes of `f` at `offset`.

    Raises:
        MalformedArchive: the file ends first ("`what` truncated at `offset`").
    """
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise MalformedArchive(f"{what} truncated at {offset} (wanted {size} bytes)")
    return data


def byte_range(f: BinaryIO, start: int, size: int, what: str) -> Opener:
    """An opener streaming `size` bytes of `f` from `start` in CHUNK blocks.

    The opener raises MalformedArchive ("`what` truncated") when the file ends first.
    """

    def content() -> Iterator[bytes]:
        left, pos = size, start
        while left:
            f.seek(pos)
            block = f.read(min(CHUNK, left))
            if not block:
                raise MalformedArchive(f"{what} truncated")
            pos += len(block)
            left -= len(block)
            yield block

    return content


@dataclass(frozen=True)
class Field:
    """One metadata value and where it lies (offset in this layer's bytes)."""

    value: object
    offset: int
    length: int
    kind: Kind = Kind.METADATA
    show: str | None = None
    number: int | None = None  # the value as a number, where it is one (mode bits)

    def display(self) -> str:
        """The value as a person reads it."""
        if self.show is not None:
            return self.show
        if isinstance(self.value, bytes):
            return self.value.hex() if len(self.value) <= 32 else f"{len(self.value)} bytes"
        return str(self.value)


@dataclass(frozen=True)
class Hidden:
    """Bytes nothing accounts for, or a structure contradicting itself."""

    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class Span:
    """`size` stored bytes of `file` from `start`: a member's bytes as they lie in the archive."""

    file: BinaryIO
    start: int
    size: int

    def blocks(self) -> Iterator[bytes]:
        """Stream the bytes in CHUNK blocks.

        Raises:
            MalformedArchive: the file ends first.
        """
        return byte_range(self.file, self.start, self.size, "member data")()


Fields = Mapping[str, Field]
Stored = Span | Opener  # where stored bytes lie, or a stream of them kept in memory


class Member:
    """One member, kept small: an archive may hold hundreds of thousands of them.

    `opener` streams its content. `stored` is where its stored bytes lie (compressed, for a
    compressed member; or a stream of them that a format keeps in memory), and `identity`
    what, with equal stored bytes, fixes the content (ZIP: method, encryption, CRC, size); a
    `plain` member's content is its stored bytes. `key` is bytes whose equality on two members
    implies equal `fields`, so equal headers are not expanded into fields. `fields` may be
    given as a function that builds them on each read.
    """

    __slots__ = ("_fields", "_opener", "identity", "key", "kind", "name", "offset", "plain",
                 "stored", "target")  # fmt: skip

    def __init__(  # noqa: PLR0917 - the positional order every format module uses
        self,
        name: str,
        kind: str,  # file, dir, symlink, hardlink, device, other
        fields: Fields | Callable[[], Fields],
        offset: int,
        opener: Opener | None = None,
        target: str | None = None,
        *,
        stored: Stored | None = None,
        identity: object = None,
        key: bytes | None = None,
        plain: bool = False,
    ) -> None:
        self.name, self.kind, self._fields, self.offset = name, kind, fields, offset
        self._opener, self.target, self.stored = opener, target, stored
        self.identity, self.key, self.plain = identity, key, plain

    @property
    def fields(self) -> Fields:
        """Its metadata fields, by short name."""
        fields = self._fields
        return fields() if callable(fields) else fields

    @property
    def opener(self) -> Opener | None:
        """Streams its content (for a `plain` member, its stored bytes)."""
        if self._opener is None and self.plain and self.stored is not None:
            return self.stored.blocks if isinstance(self.stored, Span) else self.stored
        return self._opener

    @opener.setter
    def opener(self, value: Opener | None) -> None:
        self._opener = value


@dataclass
class Listing:
    """Everything read from one archive, in stored order."""

    format: str
    prefix: str  # region prefix of members: "zip.entry", "tar.member", ...
    members: Sequence[Member] = field(default_factory=list)  # a list, or a format's views
    fields: dict[str, Field] = field(default_factory=dict)
    hidden: list[Hidden] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the decompressed content of a compressed container: where it lies (a private file), or
    # a digest of it (CAB folders); two listings' are compared by `content.same_inner`
    inner: Span | str | None = None

    def add(self, member: Member) -> None:
        """Append a member (to a listing whose members are a list).

        Raises:
            TypeError: the members are a format's fixed views (ZIP).
        """
        if not isinstance(self.members, list):
            raise TypeError("this listing's members are fixed")
        self.members.append(member)


def when(seconds: int) -> str:
    """A Unix time as a person reads it: `1700000000 (2023-11-14T22:13:20Z)`."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return f"{seconds} ({moment:%Y-%m-%dT%H:%M:%SZ})"


def quote(name: str) -> str:
    """`name` safe to show inside a region or an artifact path.

    `%`, `!` (the layer separator), `[`, `]` and control characters are percent-escaped, so a
    hostile name cannot forge another layer or another region.
    """
    if SAFE_NAME.fullmatch(name):
        return name
    out = []
    for ch in name:
        code = ord(ch)
        if ch in "%![]" or code < 0x20 or code == 0x7F or 0xDC80 <= code <= 0xDCFF:
            out.append(f"%{code & 0xFF:02X}" if code > 0xFF else f"%{code:02X}")
        else:
            out.append(ch)
    return "".join(out)


def decode_name(raw: bytes, *, utf8: bool = True) -> str:
    """A member name as text; undecodable bytes are kept (surrogateescape) and shown escaped."""
    if utf8:
        return raw.decode("utf-8", "surrogateescape")
    return raw.decode("cp437")


def unsafe_name(name: str) -> str | None:
    """Why a member name would be dangerous as a path (`..`, absolute), or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute name"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a name with '..'"
    return None
