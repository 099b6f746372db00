"""RPM packages: lead, signature header, header and the cpio payload, every byte accounted for.

Owns: reading an .rpm into a `Listing`: the lead, every tag of the signature header and of the
header as a field (`rpm.header.buildtime`, `rpm.header.filemtimes`, `rpm.header.filemodes`,
`rpm.signature.rsa`, ...; digests and sizes named `.digest`/`.size`, consequences of what they
cover), the payload decompressed by `streams` and its cpio (newc) members with their header
fields (`cpio.member[./usr/bin/x].mtime`; the trailer's header is the field `cpio.trailer`),
and as `Hidden` non-zero bytes between tag data, tag data overlapping, bytes between the
headers and the payload, in a cpio name's terminator or padding, in the trailer's data and
after it; a cpio header number that is not plain hex, or a newc checksum that is not zero
(readers skip it), is a hidden field, and so is a tag restating the package's own bytes
wrongly (`rpmdigests`).
Header signatures (RSA, DSA, PGP, GPG) are reported in the notes; proving them is `rpmsig`'s.
Does not own: decompression (`streams`), comparing (`driver`), signature proofs (`rpmsig`).

Own reader rather than `rpmfile`: that library keeps no byte offsets and skips the signature
header, and accounting for every byte needs both.
"""

from __future__ import annotations

import re
import struct
import tempfile
from contextlib import ExitStack
from dataclasses import replace
from typing import BinaryIO

from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Span,
    byte_range,
    decode_name,
    read_exact,
    when,
)
from reprover.compare.archives.rpmdigests import Layout, check_restated
from reprover.compare.archives.streams import stream_format, unwrap
from reprover.model import Kind

MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
SIZES = {0: 0, 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
SIGNATURE_TAGS = {267: "dsa", 268: "rsa", 1002: "pgp", 1005: "gpg", 1006: "pgp5"}
SIG_DIGESTS = {62: "region", 269: "sha1", 273: "sha256", 1000: "size", 1004: "md5",
               1007: "payloadsize", 1008: "reserved", 270: "longsize", 271: "longarchivesize",
               277: "filesignatures", 278: "filesignaturelength"}  # fmt: skip
HEADER_NAMES = {
    63: "region.digest", 100: "i18ntable", 1000: "name", 1001: "version", 1002: "release",
    1004: "summary", 1005: "description", 1006: "buildtime", 1007: "buildhost",
    1009: "size", 1028: "filesizes.size", 1030: "filemodes.mode", 1034: "filemtimes",
    1035: "filedigests.digest", 1039: "fileusername.owner", 1040: "filegroupname.owner",
    1094: "cookie", 1124: "payloadformat", 1125: "payloadcompressor", 1126: "payloadflags",
    5092: "payloaddigest.digest", 5093: "payloaddigestalgo", 5097: "payloaddigestalt.digest",
}  # fmt: skip
CPIO = (
    ("ino", 6), ("mode", 14), ("uid", 22), ("gid", 30), ("nlink", 38), ("mtime", 46),
    ("size", 54), ("device", 62), ("rdevice", 78), ("namesize", 94), ("checksum", 102),
)  # fmt: skip


ALLOWABLE = ("buildtime", "filemtimes", "fileusername.owner", "filegroupname.owner")
HEX = re.compile(rb"[0-9A-Fa-f]+")
OWNER = re.compile(rb"[\x21-\x7e\x80-\xff][\x20-\x7e\x80-\xff]{0,254}")


def _well_formed(name: str, kind: int, n: int, data: bytes) -> bool:
    """Whether a tag a rule may allow holds only its values: INT32 times (one build time),
    owner names of at most 255 bytes. (A file count above the files' is caught per file.)"""
    if name == "buildtime":
        return kind == 4 and n == 1
    if name == "filemtimes":
        return kind == 4
    return kind == 8 and all(OWNER.fullmatch(x) for x in data.split(b"\0")[:n])


def _one_time_per_file(listing: Listing, section: str, counts: dict[int, int]) -> None:
    """More file times than file modes: the extra values are data, the tag `tag[1034]`."""
    times = listing.fields.get(f"rpm.{section}.filemtimes")
    if times is not None and counts.get(1034) != counts.get(1030):
        del listing.fields[f"rpm.{section}.filemtimes"]
        listing.fields[f"rpm.{section}.tag[1034]"] = replace(times, kind=Kind.METADATA)


def _strings(store: bytes, at: int, count: int) -> int:
    """The length of `count` NUL-terminated strings at `at`."""
    pos = at
    for _ in range(count):
        end = store.find(b"\0", pos)
        if end < 0:
            raise MalformedArchive("rpm header string without its terminator")
        pos = end + 1
    return pos - at


def tag_length(store: bytes, kind: int, offset: int, count: int) -> int:
    """The bytes the data of one tag of type `kind` and `count` values takes at `offset`.

    Raises:
        MalformedArchive: a string runs past the store.
    """
    if kind in (6, 8, 9):
        return _strings(store, offset, count if kind in (8, 9) else 1)
    return SIZES.get(kind, 0) * count


def check_strings(index: bytes, size: int, what: str) -> None:
    """Refuse a header whose tags claim more strings than its store has bytes.

    Every string takes at least its NUL, so this bounds the string scan of `tag_length` by
    the store's size, whatever the counts say.

    Raises:
        MalformedArchive: more strings than bytes.
    """
    strings = sum(n for _, kind, _, n in struct.iter_unpack(">IIII", index) if kind in (8, 9))
    if strings > size:
        raise MalformedArchive(f"{what} claims {strings} strings in {size} bytes")


def _show(kind: int, count: int, data: bytes) -> str:
    """A tag's value as a person reads it (long values shortened)."""
    if kind in (6, 8, 9):
        text = ", ".join(p.decode("utf-8", "replace") for p in data.split(b"\0")[:count])
    elif kind in (3, 4) and len(data) == SIZES[kind] * count:
        text = ", ".join(
            str(v) for v in struct.unpack(f">{count}{'H' if kind == 3 else 'I'}", data)
        )
    elif len(data) > 32:
        text = f"{len(data)} bytes" + (" (all zero)" if not data.strip(b"\0") else (
            f": {data[:16].hex()}..."))  # fmt: skip
    else:
        text = data.hex()
    return text if len(text) <= 80 else text[:77] + "..."


def _header(f: BinaryIO, start: int, section: str, listing: Listing) -> int:  # noqa: PLR0912
    """Read one header structure at `start` into fields; return where it ends."""
    head = read_exact(f, start, 16, "rpm")
    if head[:4] != HEADER_MAGIC:
        raise MalformedArchive(f"no rpm {section} header at {start}")
    count, size = struct.unpack(">II", head[8:16])
    if count > 65536 or size > 64 << 20:
        raise MalformedArchive(f"rpm {section} header too large")
    index = read_exact(f, start + 16, 16 * count, "rpm")
    base = start + 16 + 16 * count
    store = read_exact(f, base, size, "rpm")
    spans = []
    counts: dict[int, int] = {}
    check_strings(index, size, f"rpm {section} header")
    for i in range(count):
        tag, kind, offset, n = struct.unpack_from(">IIII", index, 16 * i)
        if offset > size:
            raise MalformedArchive(f"rpm {section} tag {tag} points outside its store")
        length = tag_length(store, kind, offset, n)
        if offset + length > size:
            raise MalformedArchive(f"rpm {section} tag {tag} runs past its store")
        spans.append((offset, offset + length, tag))
        data = store[offset : offset + length]
        value: object = (kind, n, data)
        names = SIG_DIGESTS if section == "signature" else HEADER_NAMES
        name = SIGNATURE_TAGS.get(tag) if section == "signature" else None
        field_kind = Kind.METADATA
        if name is not None:
            field_kind = Kind.SIGNATURE
            listing.notes.append(
                f"RPM {name.upper()} signature (tag {tag}): allowed only under the 'signature' "
                "rule when proven by a pinned OpenPGP key (rpmsig)"
            )
        else:
            name = names.get(tag, f"tag[{tag}]")
            if section == "signature" and tag in SIG_DIGESTS:
                name += ".digest"
        if name in ALLOWABLE and not _well_formed(name, kind, n, data):
            name = f"tag[{tag}]"  # a time or owner tag holding more than that: data, no rule
        if name in ("buildtime", "filemtimes"):
            field_kind = Kind.TIMESTAMP
        if name == "filemodes.mode" and kind == 3:
            value = struct.unpack(f">{n}H", data)
        show = (
            when(struct.unpack(">I", data)[0])
            if name == "buildtime" and len(data) == 4
            else _show(kind, n, data)
        )
        listing.fields[f"rpm.{section}.{name}"] = Field(
            value, base + offset, length, field_kind, show
        )
        counts[tag] = n
    _one_time_per_file(listing, section, counts)
    pos = 0
    for begin, end, tag in sorted(spans):
        if begin < pos:
            listing.hidden.append(Hidden(base + begin, pos - begin,
                                         f"rpm {section} tag {tag} overlaps another"))  # fmt: skip
        elif store[pos:begin].strip(b"\0"):
            listing.hidden.append(Hidden(base + pos, begin - pos,
                                         f"data between rpm {section} tags"))  # fmt: skip
        pos = max(pos, end)
    if store[pos:].strip(b"\0"):
        listing.hidden.append(Hidden(base + pos, size - pos, f"data after the rpm {section} tags"))
    return int(base + size)


def read_rpm(f: BinaryIO, size: int, budget: Budget, stack: ExitStack) -> Listing:
    """Read the RPM in `f` (`size` bytes); the payload goes to a file `stack` closes.

    Raises:
        MalformedArchive: a structure is malformed.
        LimitHit: a bound of `budget` was reached, or the payload is not newc cpio.
    """
    listing = Listing("rpm", "cpio.member")
    lead = read_exact(f, 0, 96, "rpm")
    listing.fields["rpm.lead"] = Field(lead, 0, 96)
    end = _header(f, 96, "signature", listing)
    pad = (8 - end % 8) % 8
    if read_exact(f, end, pad, "rpm").strip(b"\0"):
        listing.hidden.append(Hidden(end, pad, "data in the signature header's padding"))
    payload = _header(f, end + pad, "header", listing)
    f.seek(payload)
    fmt = stream_format(f.read(8))
    raw = stack.enter_context(tempfile.TemporaryFile(prefix="reprover-rpm-"))  # noqa: SIM115
    if fmt is None:
        raise LimitHit("archive.unsupported", "rpm payload compression not recognized")
    window = stack.enter_context(tempfile.TemporaryFile(prefix="reprover-rpm-payload-"))  # noqa: SIM115
    f.seek(payload)
    while block := f.read(1 << 20):
        window.write(block)
    window.flush()
    fields, hidden = unwrap(fmt, window, size - payload, raw, budget)
    listing.inner = Span(raw, 0, raw.tell())
    for key, value in fields.items():
        listing.fields[key] = Field(value.value, payload + value.offset, value.length, value.kind,
                                    value.show)  # fmt: skip
    listing.hidden.extend(Hidden(payload + h.offset, h.length, h.reason) for h in hidden)
    listing.notes.append(f"cpio offsets are in the {fmt}-decompressed payload")
    expanded = raw.tell()
    _cpio(raw, expanded, budget, listing)
    counts = {section: struct.unpack(">I", read_exact(f, at + 8, 4, "rpm"))[0]
              for section, at in (("signature", 96), ("header", end + pad))}  # fmt: skip
    check_restated(listing, f, Layout((end + pad, payload), (payload, size), counts, expanded, raw))
    return listing


def _zero(f: BinaryIO, listing: Listing, start: int, end: int, what: str) -> None:
    """Bytes `start`..`end` of the payload that only structure explains: hidden unless NULs."""
    for at in range(start, end, CHUNK):
        if read_exact(f, at, min(CHUNK, end - at), "rpm").strip(b"\0"):
            listing.hidden.append(Hidden(start, end - start, f"non-zero bytes in {what}"))
            return


def _cpio(f: BinaryIO, size: int, budget: Budget, listing: Listing) -> None:
    pos = 0
    while True:
        head = read_exact(f, pos, 110, "rpm")
        if head[:6] not in (b"070701", b"070702"):
            raise LimitHit("archive.unsupported", f"cpio format {head[:6]!r} (newc only)")
        try:
            values = {key: int(head[at : at + 8], 16) for key, at in CPIO}
        except ValueError as exc:
            raise MalformedArchive(f"cpio header at {pos}: {exc}") from exc
        name_at = pos + 110
        raw_name = read_exact(f, name_at, values["namesize"], "rpm")[:-1]
        data = (name_at + values["namesize"] + 3) // 4 * 4
        end = (data + values["size"] + 3) // 4 * 4
        # the name's NUL and the padding after the name and the data: nothing reads them
        _zero(f, listing, name_at + len(raw_name), data, f"the NUL and padding after {raw_name!r}")
        _zero(f, listing, data + values["size"], end, f"the padding after {raw_name!r}")
        if raw_name == b"TRAILER!!!":  # no member: its header is a field, its data hidden
            listing.fields["cpio.trailer"] = Field(head, pos, 110)
            _zero(f, listing, data, data + values["size"], "data of the cpio trailer")
            pos = end
            break
        budget.member(raw_name)
        fields = {}
        for key, at in CPIO:
            width = 16 if key in ("device", "rdevice") else 8
            kind = Kind.TIMESTAMP if key == "mtime" else Kind.METADATA
            if not HEX.fullmatch(head[at : at + width]) or (
                key == "checksum" and head[:6] == b"070701" and values[key]
            ):  # int() reads "+1_0" too; newc has no checksum (readers skip it): data
                kind = Kind.HIDDEN
            show = when(values[key]) if key == "mtime" else (
                f"{values[key]:o}" if key == "mode" else None)  # fmt: skip
            fields[key] = Field(head[at : at + width], pos + at, width, kind, show,
                                values.get(key))  # fmt: skip
        mode = values["mode"] & 0o170000
        kind_name = {0o100000: "file", 0o040000: "dir", 0o120000: "symlink"}.get(mode, "other")
        member = Member(decode_name(raw_name), kind_name, fields, pos,
                        opener=byte_range(f, data, values["size"], "rpm member"))  # fmt: skip
        if kind_name == "symlink":
            member.target = read_exact(f, data, values["size"], "rpm").decode(
                "utf-8", "surrogateescape"
            )
        listing.add(member)
        pos = end
        if pos > size:
            raise MalformedArchive("cpio member runs past the payload")
    f.seek(pos)
    rest = f.read(size - pos) if size > pos else b""
    if rest.strip(b"\0"):
        listing.hidden.append(Hidden(pos, len(rest), "data after the cpio trailer"))
