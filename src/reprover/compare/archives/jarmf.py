"""The JAR manifest grammar (MANIFEST.MF and signature files), read strictly.

Owns: `parse_manifest`, which splits a manifest or `.SF` file into its main section and its
per-entry sections, keeping each section's raw bytes (what `.SF` digests cover: a section's
lines and the blank line that ends it) and its attributes in order.
Does not own: what the attributes mean or the digests (`jarsig`).

The JAR specification leaves room that Java's reader fills silently; each such case is
refused here, so two readers cannot see two different manifests in one file:

- lines end in CRLF or LF; a bare CR (also a newline to Java) is refused, and so is a last
  line without a newline (Java drops it without a word);
- no line is longer than 72 bytes; a line starting with one space continues the one before;
- a header is `Name: value` with a name of letters, digits, `-` and `_` (at most 70 bytes)
  and a UTF-8 value; no NUL byte anywhere;
- sections are separated by exactly one blank line (Java skips extra ones);
- a per-entry section starts with `Name` spelled exactly so; the main section has none;
- within a section, one attribute name appears once, compared without case (Java keeps the
  last of two, and `Foo` and `FOO` are one name to it); one entry name has one section (Java
  merges two).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reprover.errors import VerificationError

MAX_LINE = 72
HEADER = re.compile(rb"([A-Za-z0-9][A-Za-z0-9_-]{0,69}): (.*)", re.DOTALL)


@dataclass(frozen=True)
class Section:
    """One section: its raw bytes (ending blank line included) and its attributes in order."""

    raw: bytes
    attributes: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """The entry a per-entry section describes (its first attribute, `Name`)."""
        return self.attributes[0][1]

    def get(self, key: str) -> str | None:
        """The value of attribute `key` (exact spelling), if present."""
        return next((v for k, v in self.attributes if k == key), None)


@dataclass(frozen=True)
class Manifest:
    """A manifest or signature file: the main section, then per-entry sections by name."""

    raw: bytes
    main: Section
    sections: dict[str, Section]


def _lines(data: bytes, what: str) -> list[bytes]:
    """The lines of `data` without their terminators.

    Raises:
        VerificationError: a bare CR, a NUL, a line over 72 bytes or no final newline.
    """
    if b"\0" in data:
        raise VerificationError(f"{what}: holds a NUL byte")
    lines: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            raise VerificationError(
                f"{what}: the last line has no newline (Java ignores such a line)"
            )
        line = data[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            raise VerificationError(f"{what}: a bare CR in line {len(lines) + 1} (ambiguous)")
        if len(line) > MAX_LINE:
            raise VerificationError(
                f"{what}: line {len(lines) + 1} is {len(line)} bytes (at most {MAX_LINE})"
            )
        lines.append(line)
        pos = end + 1
    return lines


def _attributes(lines: list[bytes], what: str) -> tuple[tuple[str, str], ...]:
    """Join continuation lines and decode the headers of one section.

    Raises:
        VerificationError: a malformed header, bad UTF-8, or one name twice (any case).
    """
    joined: list[bytearray] = []
    for line in lines:
        if line.startswith(b" "):
            if not joined:
                raise VerificationError(f"{what}: a section starts with a continuation line")
            joined[-1] += line[1:]
        else:
            joined.append(bytearray(line))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for header in joined:
        match = HEADER.fullmatch(bytes(header))
        if match is None:
            shown = bytes(header[:40]).decode("utf-8", "replace")
            raise VerificationError(f"{what}: malformed header {shown!r}")
        key = match.group(1).decode("ascii")
        try:
            value = match.group(2).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationError(f"{what}: the value of {key!r} is not UTF-8") from exc
        if key.lower() in seen:
            raise VerificationError(
                f"{what}: attribute {key!r} appears twice in one section (names ignore case)"
            )
        seen.add(key.lower())
        out.append((key, value))
    return tuple(out)


def parse_manifest(data: bytes, what: str) -> Manifest:
    """Parse a manifest or signature file held to the grammar above.

    Raises:
        VerificationError: outside the grammar; the message says where.
    """
    lines = _lines(data, what)
    groups: list[list[bytes]] = [[]]
    for line in lines:
        if line:
            groups[-1].append(line)
        elif groups[-1] or len(groups) == 1:
            groups.append([])
        else:
            raise VerificationError(f"{what}: two blank lines in a row (an empty section)")
    if not groups[-1] and len(groups) > 1:
        groups.pop()  # the blank line that ended the last section
    offsets = _raw_spans(data, [len(g) for g in groups])
    main_attrs = _attributes(groups[0], f"{what}, main section")
    if any(k.lower() == "name" for k, _ in main_attrs):
        raise VerificationError(f"{what}: the main section has a Name attribute")
    main = Section(data[offsets[0][0] : offsets[0][1]], main_attrs)
    sections: dict[str, Section] = {}
    for group, (start, end) in zip(groups[1:], offsets[1:], strict=True):
        attrs = _attributes(group, f"{what}, section {len(sections) + 1}")
        if not attrs or attrs[0][0] != "Name" or not attrs[0][1]:
            raise VerificationError(
                f"{what}: section {len(sections) + 1} does not start with 'Name: <entry>'"
            )
        if any(k.lower() == "name" for k, _ in attrs[1:]):
            raise VerificationError(f"{what}: section {attrs[0][1]!r} has two Name attributes")
        if attrs[0][1] in sections:
            raise VerificationError(f"{what}: two sections name {attrs[0][1]!r}")
        sections[attrs[0][1]] = Section(data[start:end], attrs)
    return Manifest(data, main, sections)


def _raw_spans(data: bytes, counts: list[int]) -> list[tuple[int, int]]:
    """Byte spans of each section: its `count` lines, then the blank line ending it if any."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for count in counts:
        start = pos
        for _ in range(count):
            pos = data.index(b"\n", pos) + 1
        if pos < len(data):  # the blank line ending the section
            pos = data.index(b"\n", pos) + 1
        spans.append((start, pos))
    return spans
