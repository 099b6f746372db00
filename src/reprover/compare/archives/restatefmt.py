"""The line formats of members restating other members' digests, parsed strictly.

Owns: `FORMATS`, one strict reader and writer per format: Debian's `md5sums` (`<md5>  <path>`,
the lines dh_md5sums writes) and a wheel's `RECORD` (CSV `path,sha256=<urlsafe base64 without
padding>,size`, as bdist_wheel writes it: PEP 376 and 427; sha256 only). Strict: UTF-8 for
RECORD; `\\n` line ends, the last line ended (RECORD: or `\\r\\n` on every line, as csv's
default writes it, auditwheel's for instance); every line in the format's one spelling
(a RECORD row must be what Python's csv writer makes of it again); a path relative and
normal (no `./`, `..`, empty part or leading `/`); no path twice. Anything else is
`NotRestated` with the reason.
Does not own: tying entries to members or deciding (`restated`).
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprover.compare.archives.restated import Changed

MD5_LINE = re.compile(rb"([0-9a-f]{32})  ([^\n]+)")
SHA256 = re.compile(r"sha256=([A-Za-z0-9_-]{43})")
SIZE = re.compile(r"0|[1-9][0-9]*")
RECORD_SELF = re.compile(r"[^/]+\.dist-info/RECORD(?:\.jws|\.p7s)?")


class NotRestated(Exception):  # noqa: N818 - a finding: why a restating member is not explained
    """The restating member's difference is not explained; `undecided` when only because a
    member it names is not decided."""

    def __init__(self, message: str, *, undecided: bool = False) -> None:
        super().__init__(message)
        self.undecided = undecided


@dataclass(frozen=True)
class Entry:
    """One line: the path it names, its bytes (with the newline), where, and its values."""

    path: str
    line: bytes
    offset: int
    values: tuple[str, int | None] | None  # (digest as hex, size); None: no digest (RECORD)


@dataclass(frozen=True)
class Format:
    """A restating format: its reader, its writer of one entry and what its values are."""

    name: str
    values: str  # what an entry restates, in words
    parse: Callable[[bytes, str], list[Entry]]
    restate: Callable[[Entry, Changed], bytes]  # the entry with the released content's values
    rebuilt_values: Callable[[Changed], tuple[str, int | None] | None]

    def states_rebuilt(self, e: Entry, changed: Changed) -> bool:
        """Whether the entry states the values of the rebuilt content of its member."""
        return e.values is not None and e.values == self.rebuilt_values(changed)

    @staticmethod
    def self_entry(e: Entry) -> bool:
        """A RECORD's line for itself or its signature: no digest, by the format's rule."""
        return e.values is None


def _lines(data: bytes, side: str, name: str, *, crlf: bool = False) -> list[tuple[int, bytes]]:
    """The lines with their ends: LF each, or with `crlf` CR LF each if the first has it."""
    if data and not data.endswith(b"\n"):
        raise NotRestated(f"the {side} {name} does not end with a newline (trailing bytes)")
    end = b"\r\n" if crlf and data.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    if any(c in data.replace(end, b"") for c in (b"\r", b"\n")):
        raise NotRestated(f"the {side} {name} has a carriage return not ending a line, or "
                          "mixes line endings")  # fmt: skip
    out, at = [], 0
    for line in data.split(end)[:-1]:
        out.append((at, line + end))
        at += len(line) + len(end)
    return out


def _path(path: str, side: str, name: str, seen: set[str]) -> str:
    parts = path.split("/")
    if path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise NotRestated(f"the {side} {name} names {path!r}: not a normal relative path")
    if path in seen:
        raise NotRestated(f"the {side} {name} names {path!r} twice")
    seen.add(path)
    return path


def _parse_md5sums(data: bytes, side: str) -> list[Entry]:
    seen: set[str] = set()
    out = []
    for at, line in _lines(data, side, "md5sums"):
        m = MD5_LINE.fullmatch(line[:-1])
        if m is None:
            raise NotRestated(f"the {side} md5sums has a malformed line at byte {at}")
        path = _path(m.group(2).decode("utf-8", "surrogateescape"), side, "md5sums", seen)
        out.append(Entry(path, line, at, (m.group(1).decode(), None)))
    return out


def _restate_md5(e: Entry, changed: Changed) -> bytes:
    assert changed.md5 is not None  # noqa: S101 - registered with the md5sums scope
    return changed.md5[0].encode() + e.line[32:]


def _parse_record(data: bytes, side: str) -> list[Entry]:
    seen: set[str] = set()
    out = []
    for at, raw in _lines(data, side, "RECORD", crlf=True):  # csv's own default: \r\n
        try:
            line = raw.decode()
            rows = list(csv.reader([line.removesuffix("\n").removesuffix("\r")], strict=True))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise NotRestated(f"the {side} RECORD line at byte {at} is malformed: {exc}") from exc
        if len(rows) != 1 or len(rows[0]) != 3 or _row(rows[0], _end(raw)) != line:
            raise NotRestated(f"the {side} RECORD line at byte {at} is not path,hash,size as "
                              "written by the csv module")  # fmt: skip
        path, digest, size = rows[0]
        path = _path(path, side, "RECORD", seen)
        out.append(Entry(path, raw, at, _record_values(path, digest, size, side)))
    return out


def _record_values(path: str, digest: str, size: str, side: str) -> tuple[str, int] | None:
    if not digest and not size and RECORD_SELF.fullmatch(path):
        return None
    m = SHA256.fullmatch(digest)
    if m is None or SIZE.fullmatch(size) is None:
        raise NotRestated(f"the {side} RECORD entry {path!r} has no sha256 and size")
    raw = base64.urlsafe_b64decode(m.group(1) + "=")
    if _b64(raw) != m.group(1):  # the last character's spare bits: two spellings of one digest
        raise NotRestated(f"the {side} RECORD entry {path!r} spells its digest otherwise")
    return raw.hex(), int(size)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _end(line: bytes) -> str:
    return "\r\n" if line.endswith(b"\r\n") else "\n"


def _row(row: list[str], end: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=end).writerow(row)
    return out.getvalue()


def _restate_record(e: Entry, changed: Changed) -> bytes:
    assert changed.released is not None  # noqa: S101 - only accepted members are restated
    digest = "sha256=" + _b64(bytes.fromhex(changed.released.sha256))
    return _row([e.path, digest, str(changed.released.size)], _end(e.line)).encode()


def _md5_rebuilt(changed: Changed) -> tuple[str, int | None] | None:
    return None if changed.md5 is None else (changed.md5[1], None)


def _record_rebuilt(changed: Changed) -> tuple[str, int | None] | None:
    return None if changed.rebuilt is None else (changed.rebuilt.sha256, changed.rebuilt.size)


FORMATS = {
    "md5sums": Format("md5sums", "MD5", _parse_md5sums, _restate_md5, _md5_rebuilt),
    "record": Format("RECORD", "sha256 and size", _parse_record, _restate_record,
                     _record_rebuilt),
}  # fmt: skip
