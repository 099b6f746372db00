"""The MSI summary information stream (`\\x05SummaryInformation`) as named fields.

Owns: parsing the OLE property set (MS-OLEPS: a 48-byte header naming one section of the
SummaryInformation format, the section's property table, one typed value per property) into
fields `msi.summary.<name>` (`created`, `saved`, `printed` are FILETIMEs of kind TIMESTAMP;
`revision` is the MSI package code) and a skeleton: the stream with every field's bytes zeroed.
Strict, so that the fields and the skeleton together determine every byte of the stream: one
section, right after the header, ending at the stream's end; properties with distinct ids whose
values follow the table back to back in table order; only the types MSI writes (VT_I2, VT_I4,
VT_LPSTR, VT_FILETIME); zero padding, and nothing after a string's terminator. Anything else is
`SummaryRefused` and the stream stays bytes.
`olefile.getproperties` decodes the same structure but tolerates gaps, overlaps and repeated
ids and does not say where each value lies, which is what accounting for every byte needs.
Does not own: reading the compound file (`ole`), comparing (`driver`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from reprover.model import Kind

NAME = "\x05SummaryInformation"
LIMIT = 1 << 16  # larger summary streams are compared as bytes
FMTID = bytes.fromhex("e0859ff2f94f6810ab9108002b27b3d9")  # F29F85E0-4FF9-1068-AB91-08002B27B3D9
HEADER = 48
VT_I2, VT_I4, VT_LPSTR, VT_FILETIME = 2, 3, 30, 64
NAMES = {1: "codepage", 2: "title", 3: "subject", 4: "author", 5: "keywords", 6: "comments",
         7: "template", 8: "lastauthor", 9: "revision", 10: "edittime", 11: "printed",
         12: "created", 13: "saved", 14: "pages", 15: "words", 16: "characters",
         18: "appname", 19: "security"}  # fmt: skip
TIMES = frozenset({11, 12, 13})
EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


class SummaryRefused(Exception):  # noqa: N818 - a finding about the input
    """The stream is not a property set whose every byte is explained."""


@dataclass(frozen=True)
class Value:
    """One field read from the stream: its value, where it lies in the stream, how to show it."""

    value: object
    offset: int
    length: int
    kind: Kind
    show: str | None = None


def filetime(value: int) -> str:
    """A FILETIME (100 ns since 1601) as a person reads it."""
    try:
        moment = EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return str(value)
    return f"{value} ({moment:%Y-%m-%dT%H:%M:%SZ})"


def parse(data: bytes) -> tuple[dict[str, Value], bytes]:
    """The fields of a summary information stream, and its skeleton (field bytes zeroed).

    Raises:
        SummaryRefused: a byte is not explained; the message says which.
    """
    if len(data) < HEADER + 8:
        raise SummaryRefused("shorter than a property set header and one section")
    order, version, system = struct.unpack_from("<HHI", data, 0)
    sets, fmtid, start = struct.unpack_from("<I16sI", data, 24)
    if order != 0xFFFE or version not in (0, 1):
        raise SummaryRefused("not a property set (byte order or version)")
    if sets != 1 or fmtid != FMTID or start != HEADER:
        raise SummaryRefused("not one SummaryInformation section right after the header")
    size, count = struct.unpack_from("<II", data, HEADER)
    if HEADER + size != len(data):
        raise SummaryRefused(f"the section declares {size} bytes, the stream holds "
                             f"{len(data) - HEADER} after the header")  # fmt: skip
    if count > (size - 8) // 12:
        raise SummaryRefused("more properties than the section can hold")
    fields = {
        "msi.summary.format": Value(version, 2, 2, Kind.METADATA),
        "msi.summary.system": Value(system, 4, 4, Kind.METADATA, f"{system:#010x}"),
        "msi.summary.clsid": Value(data[8:24], 8, 16, Kind.METADATA),
    }
    skeleton = bytearray(data)
    skeleton[2:24] = bytes(22)
    at = 8 + 8 * count
    seen: set[int] = set()
    for i in range(count):
        pid, offset = struct.unpack_from("<II", data, HEADER + 8 + 8 * i)
        if pid in seen:
            raise SummaryRefused(f"property {pid} appears twice")
        seen.add(pid)
        if offset != at:
            raise SummaryRefused(f"property {pid} is not where the previous value ends")
        value, end = _value(data, HEADER + offset, HEADER + size, pid)
        name = f"msi.summary.{NAMES.get(pid, f'property{pid}')}"
        fields[name] = value
        skeleton[value.offset : value.offset + value.length] = bytes(value.length)
        at = end - HEADER
    if at != size:
        raise SummaryRefused(f"{size - at} byte(s) after the last property")
    return fields, bytes(skeleton)


def _value(data: bytes, at: int, end: int, pid: int) -> tuple[Value, int]:
    """The typed value at `at` and where the next one starts (padded to 4 bytes)."""
    if at + 4 > end:
        raise SummaryRefused(f"property {pid} lies outside the section")
    kind, pad = struct.unpack_from("<HH", data, at)
    if pad:
        raise SummaryRefused(f"property {pid}: non-zero padding after its type")
    body = at + 4
    if kind == VT_I2 and body + 4 <= end:
        (number,) = struct.unpack_from("<h", data, body)
        _zero(data, body + 2, body + 4, pid)
        return Value(number, body, 2, Kind.METADATA), body + 4
    if kind == VT_I4 and body + 4 <= end:
        (number,) = struct.unpack_from("<i", data, body)
        return Value(number, body, 4, Kind.METADATA), body + 4
    if kind == VT_FILETIME and body + 8 <= end:
        (stamp,) = struct.unpack_from("<Q", data, body)
        field_kind = Kind.TIMESTAMP if pid in TIMES else Kind.METADATA
        return Value(stamp, body, 8, field_kind, filetime(stamp)), body + 8
    if kind == VT_LPSTR and body + 4 <= end:
        (length,) = struct.unpack_from("<I", data, body)
        text = body + 4
        stop = text + length
        padded = stop + (-length % 4)
        if padded > end:
            raise SummaryRefused(f"property {pid}: string longer than the section")
        raw = data[text:stop]
        if length and raw[-1]:
            raise SummaryRefused(f"property {pid}: string without its terminator")
        cut = raw.find(b"\0")
        if cut >= 0 and raw[cut:].strip(b"\0"):
            raise SummaryRefused(f"property {pid}: bytes after the string's terminator")
        _zero(data, stop, padded, pid)
        shown = raw[: cut if cut >= 0 else len(raw)].decode("latin-1")
        return Value(raw, text, length, Kind.METADATA, repr(shown)), padded
    raise SummaryRefused(f"property {pid}: type {kind} is not one MSI writes, or is truncated")


def _zero(data: bytes, start: int, stop: int, pid: int) -> None:
    if data[start:stop].strip(b"\0"):
        raise SummaryRefused(f"property {pid}: non-zero padding after its value")
