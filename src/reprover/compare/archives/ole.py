"""OLE compound files (MSI installers): streams as members, every sector accounted for.

Owns: reading a compound file into a `Listing` with `olefile` for the header, FAT, MiniFAT and
directory; each stream a member (MSI stream names decoded: `!_Tables`, `product.cab`; inside a
storage `storage/stream`), each storage a `dir` member `storage/`, their directory entries' raw
name, CLSID, state bits and FILETIMEs as fields (`ole.stream[N].mtime`), the root entry's as
container fields, and the sector placement and directory tree (types, colours, links) as
`ole.layout` (allowed by `archive.order`; every sector is accounted for, but their
arrangement is itself about log2(n!) bits for n sectors; a signed MSI's layout is held to its
signer's by `msilayout`). `Hidden`: a free sector or mini sector holding data (a sector marked
FATSECT in the FAT but listed by no DIFAT is free; `olealloc` checks the tables' own unused
entries), a sector claimed by two chains or by none, non-zero slack after a stream's end, an
unused directory entry holding data, a used one with bytes no field explains (after the name,
a size's high half, a storage's size, a stream's child link, a colour byte but red or black,
an empty entry in the tree), a name with `/`, `\\`, `:`, `!` or NUL, and bytes after the last
sector.
The root `\\x05SummaryInformation` stream, when `olesummary` explains every byte of it, becomes
`msi.summary.*` container fields plus its skeleton as the member's stored bytes (the driver
then compares skeletons and fields, not the bytes).
Stream content is streamed sector by sector, never loaded whole (the summary, at most 64 KiB,
is read whole).
Does not own: what a stream holds (an embedded cabinet is opened by the driver through
`cabfmt`), the property set grammar (`olesummary`), comparing (`driver`).
"""

from __future__ import annotations

import array
import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import olefile

from reprover.compare.archives.limits import Budget
from reprover.compare.archives.listing import (
    CHUNK,
    Field,
    Hidden,
    Listing,
    MalformedArchive,
    Member,
    Opener,
)
from reprover.compare.archives.olealloc import minifat_slack, table_sectors
from reprover.compare.archives.olesummary import LIMIT as SUMMARY_LIMIT
from reprover.compare.archives.olesummary import NAME as SUMMARY
from reprover.compare.archives.olesummary import SummaryRefused, parse
from reprover.model import Kind

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
FREESECT, ENDOFCHAIN, FATSECT, DIFSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC
MSI_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"
ENTRY = 128
NOSTREAM = 0xFFFFFFFF
STORAGE_STARTS = (b"\0" * 4, b"\xfe\xff\xff\xff", b"\xff" * 4)
ILLEGAL = "/\\:!"  # MS-CFB 2.6.1: never in an entry name
SIGNATURE = "\x05DigitalSignature"  # an MSI's Authenticode signature stream (`msisig`)
EXTENDED = "\x05MsiDigitalSignatureEx"  # its pre-hash of the metadata, when signed extended


class OleFile(olefile.OleFileIO):  # type: ignore[misc]  # olefile is untyped
    """`olefile.OleFileIO` with the FAT loaded in linear time: olefile 0.47 copies the whole FAT
    array for each FAT sector it adds (`self.fat = self.fat + nextfat`), quadratic in the file's
    size (3.5 s to open a 256 MiB file with 512-byte sectors). The same sectors in the same order,
    appended in place."""

    def loadfat_sect(self, sect: Any) -> Any:
        """Append the FAT sectors listed in `sect` (a raw sector or an array of sector numbers)
        to the FAT, up to ENDOFCHAIN or FREESECT; return the last number read."""
        numbers = sect if isinstance(sect, array.array) else self.sect2array(sect)
        isect = None
        for number in numbers:
            isect = number & 0xFFFFFFFF
            if isect in (ENDOFCHAIN, FREESECT):
                break
            self.fat.extend(self.sect2array(self.getsect(isect)))
        return isect


def msi_name(name: str) -> str:
    """Decode an MSI stream name (two base-64 characters per code point in 0x3800-0x47FF)."""
    out = []
    for ch in name:
        code = ord(ch)
        if 0x3800 <= code < 0x4800:
            code -= 0x3800
            out.append(MSI_CHARS[code & 0x3F] + MSI_CHARS[(code >> 6) & 0x3F])
        elif 0x4800 <= code < 0x4840:
            out.append(MSI_CHARS[code - 0x4800])
        elif code == 0x4840:
            out.append("!")
        else:
            out.append(ch)
    return "".join(out)


class _Sectors:
    """Who owns each sector; a second claim or a loop is hidden data."""

    def __init__(self, ole: olefile.OleFileIO, listing: Listing) -> None:
        self.ole, self.listing = ole, listing
        self.size = ole.sectorsize
        self.owner: dict[int, str] = {}

    def offset(self, sect: int) -> int:
        return (sect + 1) * int(self.size)

    def chain(self, start: int, what: str, table: list[int] | None = None) -> list[int]:
        fat = self.ole.fat if table is None else table
        out: list[int] = []
        sect = start
        while sect not in (ENDOFCHAIN, FREESECT):
            if sect >= len(fat) or (table is None and sect >= self.ole.nb_sect):
                raise MalformedArchive(f"{what}: sector chain leaves the file")
            if table is None:
                if sect in self.owner:
                    self.listing.hidden.append(Hidden(self.offset(sect), self.size,
                        f"sector {sect} claimed by {self.owner[sect]} and {what}"))  # fmt: skip
                    break
                self.owner[sect] = what
            elif sect in out:
                raise MalformedArchive(f"{what}: mini sector chain loops")
            out.append(sect)
            if len(out) > len(fat):
                raise MalformedArchive(f"{what}: sector chain loops")
            sect = fat[sect]
        return out


def _zero(f: BinaryIO, offset: int, length: int) -> bool:
    f.seek(offset)
    return not f.read(length).strip(b"\0")


def read_ole(f: BinaryIO, size: int, budget: Budget) -> Listing:  # noqa: PLR0912, PLR0915 - one walk
    """Read the compound file in `f` (`size` bytes).

    Raises:
        MalformedArchive: `olefile` refuses the structure, or a chain is broken.
        LimitHit: a bound of `budget` was reached.
    """
    listing = Listing("ole", "ole.stream")
    f.seek(0)
    try:
        ole = OleFile(f, raise_defects=olefile.DEFECT_INCORRECT)
    except (OSError, ValueError, IndexError, RecursionError) as exc:
        raise MalformedArchive(f"ole: {exc}") from exc
    sectors = _Sectors(ole, listing)
    ssize = ole.sectorsize
    if ssize > 512 and not _zero(f, 512, ssize - 512):
        listing.hidden.append(Hidden(512, ssize - 512, "data in the header sector's padding"))
    fat, difat = table_sectors(f, ole, listing)  # not every sector marked so in the FAT
    sectors.owner.update(dict.fromkeys(fat, "the FAT") | dict.fromkeys(difat, "the DIFAT"))
    sectors.chain(ole.first_dir_sector, "the directory")
    minifat = []
    if ole.num_mini_fat_sectors:
        minifat = sectors.chain(ole.first_mini_fat_sector, "the MiniFAT")
        try:
            ole.loadminifat()
        except (OSError, ValueError, IndexError) as exc:  # olefile: "incomplete OLE stream"
            raise MalformedArchive(f"ole: the MiniFAT: {exc}") from exc
    root = ole.root
    mini_owner: dict[int, str] = {}
    container = sectors.chain(root.isectStart, "the mini stream") if root.size else []
    layout = hashlib.sha256()
    f.seek(0x1C)
    layout.update(f.read(512 - 0x1C))  # header counts, chain starts and DIFAT
    listing.fields["ole.root.clsid"] = Field(root.clsid, 0, 0)
    listing.fields["ole.root.mtime"] = Field(root.modifyTime, 0, 0, Kind.TIMESTAMP)
    listing.fields["ole.root.ctime"] = Field(root.createTime, 0, 0, Kind.TIMESTAMP)
    listing.fields["ole.root.state"] = Field(root.dwUserFlags, 0, 0)
    root_at = entry_offset(ole, 0)
    f.seek(root_at)
    raw = f.read(ENTRY)
    _entry_slack(raw, root, listing, at=root_at, name="Root Entry")
    layout.update(raw[0x42:0x50] + raw[0x74:0x78])  # type, colour, tree links, mini stream
    listing.fields["ole.header.version"] = Field((ole.minor_version, ole.dll_version), 0x18, 4)
    paths = _paths(ole)
    for entry in ole.direntries:
        if entry is None or entry.sid == 0:
            continue
        name = paths.get(entry.sid, msi_name(entry.name))
        budget.member(name.encode("utf-8", "surrogateescape"))
        at = entry_offset(ole, entry.sid)
        f.seek(at)
        raw = f.read(ENTRY)
        _entry_slack(raw, entry, listing, at=at, name=name)
        layout.update(raw[0x42:0x50] + raw[0x74:0x78])  # type, colour, tree links, start
        fields = {
            "name": Field(raw[:0x40], at, 0x40, show=repr(entry.name)),
            "clsid": Field(entry.clsid, at + 0x50, 16),
            "state": Field(entry.dwUserFlags, at + 0x60, 4),
            "ctime": Field(entry.createTime, at + 0x64, 8, Kind.TIMESTAMP),
            "mtime": Field(entry.modifyTime, at + 0x6C, 8, Kind.TIMESTAMP),
        }
        if entry.entry_type != olefile.STGTY_STREAM:
            listing.add(Member(name + "/", "dir", fields, at))
            continue
        member = Member(name, "file", fields, at)
        if entry.size >= ole.minisectorcutoff:
            chain = sectors.chain(entry.isectStart, f"stream {name!r}")
            places = [sectors.offset(s) for s in chain]
            places = _slack(f, listing, places, ssize, size=entry.size, name=name)
            member.opener = _opener(f, places, ssize, entry.size)
            unit = ssize
        else:
            mini = sectors.chain(entry.isectStart, name, ole.minifat) if entry.size else []
            msize = ole.minisectorsize
            places = []
            for m in mini:
                if m in mini_owner:
                    listing.hidden.append(Hidden(0, msize, f"mini sector {m} claimed by "
                                                 f"{mini_owner[m]} and {name!r}"))  # fmt: skip
                mini_owner[m] = name
                big = (
                    container[(m * msize) // ssize]
                    if (m * msize) // ssize < len(container)
                    else None
                )
                if big is None:
                    raise MalformedArchive(f"{name!r}: mini sector outside the mini stream")
                places.append(sectors.offset(big) + (m * msize) % ssize)
            places = _slack(f, listing, places, msize, size=entry.size, name=name)
            member.opener = _opener(f, places, msize, entry.size)
            unit = msize
        if name == SUMMARY and entry.size > SUMMARY_LIMIT:
            listing.notes.append("summary information compared as bytes: over 64 KiB")
        elif name == SUMMARY:
            _summary(listing, member, places, unit)
        listing.add(member)
    listing.fields["ole.layout"] = Field(layout.hexdigest(), 0, 0)
    _free(f, listing, sectors, container=container, mini_owner=mini_owner)
    minifat_slack(f, ole, listing, minifat, set(mini_owner))
    _unused_entries(f, ole, listing)
    end = (ole.nb_sect + 1) * ssize
    if size > end:
        listing.hidden.append(Hidden(end, size - end, "bytes after the last sector"))
    return listing


def _paths(ole: olefile.OleFileIO) -> dict[int, str]:
    """Each entry's path from the root: decoded names joined by `/`."""
    paths: dict[int, str] = {}
    todo = [(ole.root, "")]
    while todo:
        node, prefix = todo.pop()
        for kid in node.kids:
            paths[kid.sid] = prefix + msi_name(kid.name)
            if kid.kids:
                todo.append((kid, paths[kid.sid] + "/"))
    return paths


def _entry_slack(
    raw: bytes, entry: olefile.OleDirectoryEntry, listing: Listing, *, at: int, name: str
) -> None:
    """Bytes of a directory entry that no field of it explains: hidden."""
    length = int.from_bytes(raw[0x40:0x42], "little")
    why = []
    if raw[max(length - 2, 0) : 0x40].strip(b"\0"):
        why.append("data after its name")
    if any(ch in ILLEGAL for ch in entry.name):
        why.append("a name with '/', '\\', ':' or '!'")
    if "\0" in entry.name:
        why.append("a name with a NUL character before its end")
    if entry.olefile.sectorsize == 512 and raw[0x7C:0x80].strip(b"\0"):
        why.append("data in the high half of its size")
    if entry.entry_type == olefile.STGTY_STORAGE and (
        raw[0x74:0x78] not in STORAGE_STARTS or raw[0x78:0x80].strip(b"\0")
    ):  # all zeroes by MS-CFB 2.6.3; libgsf and others write ENDOFCHAIN, a part of ole.layout
        why.append("a storage with a start sector or size")
    if entry.entry_type == olefile.STGTY_STREAM and raw[0x4C:0x50] != b"\xff" * 4:
        why.append("a stream with children")
    if raw[0x43] not in (0, 1):
        why.append("a colour other than red or black")
    if entry.sid and entry.entry_type not in (olefile.STGTY_STREAM, olefile.STGTY_STORAGE):
        why.append("neither a stream nor a storage, inside the tree")
    for reason in why:
        listing.hidden.append(Hidden(at, ENTRY, f"directory entry {name!r}: {reason}"))


def _summary(listing: Listing, member: Member, places: list[int], unit: int) -> None:
    """The summary stream's properties as `msi.summary.*` fields, its skeleton as stored bytes.

    With every byte either a field or in the skeleton, two streams with equal skeletons and
    equal fields are equal: the driver compares the skeletons (`stored`) and the fields, not
    the bytes. A stream not fully explained keeps no skeleton and is compared as bytes.
    """
    if member.opener is None:
        return
    data = b"".join(member.opener())
    try:
        values, skeleton = parse(data)
    except SummaryRefused as exc:
        listing.notes.append(f"summary information compared as bytes: {exc}")
        return
    for key, v in values.items():
        where = places[v.offset // unit] + v.offset % unit
        listing.fields[key] = Field(v.value, where, v.length, v.kind, v.show)
    member.stored = lambda: iter((skeleton,))
    member.identity = ("msi.summary", len(data))


def entry_offset(ole: olefile.OleFileIO, sid: int) -> int:
    """The file offset of directory entry `sid`."""
    per = ole.sectorsize // ENTRY
    sect = ole.first_dir_sector
    for _ in range(sid // per):
        sect = ole.fat[sect]
    return int((sect + 1) * ole.sectorsize + (sid % per) * ENTRY)


def _slack(
    f: BinaryIO, listing: Listing, places: list[int], unit: int, *, size: int, name: str
) -> list[int]:
    """The places that hold the stream's `size` bytes; what its chain holds beyond is hidden.

    Sectors chained after the ones the size needs are read by nothing: each is hidden data,
    whatever it holds (its allocation-table entries would otherwise look used). The last
    needed sector's bytes after the size must be zero.

    Raises:
        MalformedArchive: the chain is shorter than the size.
    """
    need = -(-size // unit)
    if len(places) < need:
        raise MalformedArchive(f"stream {name!r}: its sector chain is shorter than its size")
    for at in places[need:]:
        listing.hidden.append(Hidden(at, unit, f"sector after the end of stream {name!r}"))
    used = size - (need - 1) * unit
    if need and used < unit and not _zero(f, places[need - 1] + used, unit - used):
        listing.hidden.append(Hidden(places[need - 1] + used, unit - used,
                                     f"data after the end of stream {name!r}"))  # fmt: skip
    return places[:need]


def _free(
    f: BinaryIO,
    listing: Listing,
    sectors: _Sectors,
    *,
    container: list[int],
    mini_owner: dict[int, str],
) -> None:
    ole = sectors.ole
    for sect in range(ole.nb_sect):
        if sect in sectors.owner:
            continue
        offset = sectors.offset(sect)
        if ole.fat[sect] != FREESECT:
            listing.hidden.append(Hidden(offset, ole.sectorsize, f"sector {sect} is in no chain"))
        elif not _zero(f, offset, ole.sectorsize):
            listing.hidden.append(Hidden(offset, ole.sectorsize, f"free sector {sect} holds data"))
    msize = ole.minisectorsize
    per = ole.sectorsize // msize
    for m in range(len(container) * per):
        if m not in mini_owner:
            at = sectors.offset(container[m // per]) + (m % per) * msize
            if not _zero(f, at, msize):
                listing.hidden.append(Hidden(at, msize, f"free mini sector {m} holds data"))


def _unused_entries(f: BinaryIO, ole: olefile.OleFileIO, listing: Listing) -> None:
    for sid, entry in enumerate(ole.direntries):
        if entry is not None:
            continue
        at = entry_offset(ole, sid)
        f.seek(at)
        raw = f.read(ENTRY)
        if raw[:0x44].strip(b"\0") or raw[0x50:].strip(b"\0"):
            listing.hidden.append(Hidden(at, ENTRY, f"unused directory entry {sid} holds data"))


def _opener(f: BinaryIO, places: list[int], unit: int, size: int) -> Opener:
    """The stream's `size` bytes from `places` (each `unit` bytes), adjacent places read as
    one block of up to `CHUNK` bytes (a stream written contiguously is read in 1 MiB reads,
    not one sector at a time)."""

    def content() -> Iterator[bytes]:
        left, i = size, 0
        while left and i < len(places):
            at, run = places[i], 1
            while (i + run < len(places) and places[i + run] == at + run * unit
                   and (run + 1) * unit <= CHUNK):  # fmt: skip
                run += 1
            want = min(run * unit, left)
            f.seek(at)
            block = f.read(want)
            if len(block) != want:
                raise MalformedArchive("ole stream truncated")
            left -= want
            i += run
            yield block

    return content
