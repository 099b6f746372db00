"""A port of osslsigncode 2.x's MSI writer: the compound file it writes when it signs.

Owns: reading a compound file as osslsigncode's reader does (`read_input`: `msi_file_new`,
`msi_dirent_new`: each storage's children in the order found, an entry, then its left
sibling's subtree, then its right sibling's), `signature_insert` (the signature streams removed,
`MsiDigitalSignatureEx` then `DigitalSignature` added last among the root's children), and
`write`, which computes what `msi_file_write` writes (`stream_handle`, `ministream_save`,
`minifat_save`, `dirtree_save`/`dirents_save`, `fat_save`, `header_save`): large streams one
after the other, each contiguous; small ones into the mini stream, each contiguous; then the
mini stream, the MiniFAT, the directory (every entry black, a storage's children a list through
right siblings sorted by name length then UTF-16 code units, osslsigncode's own sibling
numbering quirk kept), the FAT, the DIFAT, the header. It returns the tables and where each
stream goes (`Plan`), not the streams' bytes. No library writes this (olefile, libgsf and
Windows each place sectors their own way), hence the port; checked byte for byte against
osslsigncode 2.9's output.
Does not own: deciding the sector size or comparing a file with the plan (`msilayout`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from reprover.compare.archives import ole
from reprover.compare.archives.ole import (
    DIFSECT,
    ENDOFCHAIN,
    ENTRY,
    FATSECT,
    FREESECT,
    MAGIC,
    NOSTREAM,
    msi_name,
)
from reprover.errors import VerificationError

STORAGE, STREAM = 1, 2
CUTOFF, MINI, HEADER, IN_HEADER = 4096, 64, 512, 109
SIGNATURE = ole.SIGNATURE.encode("utf-16-le") + b"\0\0"  # the raw names, as entries hold them
EXTENDED = ole.EXTENDED.encode("utf-16-le") + b"\0\0"
Key = tuple[bytes, ...]  # raw names from the root down


class LayoutError(VerificationError):
    """The file is not the layout osslsigncode writes (or cannot be read as its writer would)."""


@dataclass
class Dirent:
    """One entry of the writer's tree (`MSI_DIRENT` with its `MSI_ENTRY`), fields mutable."""

    raw: bytes
    key: Key
    kids: list[Dirent] = field(default_factory=list)
    colour: int = 1
    links: list[int] = field(default_factory=lambda: [NOSTREAM] * 3)
    start: int = NOSTREAM
    size: int = 0

    def __post_init__(self) -> None:
        self.colour = self.raw[0x43]
        self.links = list(struct.unpack_from("<3I", self.raw, 0x44))
        self.start, self.size = struct.unpack_from("<2I", self.raw, 0x74)

    @property
    def name(self) -> bytes:
        return self.raw[: struct.unpack_from("<H", self.raw, 0x40)[0]]

    @property
    def kind(self) -> int:
        return self.raw[0x42]

    def bytes(self) -> bytes:
        """The entry as `msi_dirent_get` writes it."""
        n = len(self.name)
        return (self.name + bytes(64 - n) + self.raw[0x40:0x43] + bytes([self.colour])
                + struct.pack("<3I", *self.links) + self.raw[0x50:0x74]
                + struct.pack("<2I", self.start, self.size) + bytes(4))  # fmt: skip


def read_tree(read: Callable[[int], bytes], count: int) -> Dirent:
    """The tree as `msi_dirent_new` builds it from directory entries `read(sid)`, `count` of
    them: each storage's children in the order found (entry, left subtree, right subtree).

    Raises:
        LayoutError: a name length osslsigncode refuses, a link out of range, or a cycle.
    """

    def entry(sid: int, parent: Key) -> Dirent:
        raw = read(sid)
        length = struct.unpack_from("<H", raw, 0x40)[0]
        if not 0 < length <= 64:
            raise LayoutError(f"directory entry {sid} has a name length osslsigncode refuses")
        return Dirent(raw, (*parent, raw[:length]) if sid else ())

    root = entry(0, ())
    seen, todo = {0}, [(root.links[2], root)]
    while todo:
        sid, parent = todo.pop()
        if sid == NOSTREAM:
            continue
        if sid in seen or sid >= count:
            raise LayoutError(f"directory entry {sid} is linked twice or does not exist")
        seen.add(sid)
        node = entry(sid, parent.key)
        parent.kids.append(node)
        todo += [(node.links[2], node), (node.links[1], parent), (node.links[0], parent)]
    return root


def show_key(key: Key) -> str:
    """A stream's path as reports name it (MSI names decoded), quoted."""
    return repr("/".join(msi_name(n[:-2].decode("utf-16-le", "replace")) for n in key))


def new_stream(name: bytes) -> Dirent:
    """`dirent_add`: a fresh black stream entry, no times, no CLSID."""
    links = [NOSTREAM] * 3
    raw = (name + bytes(64 - len(name)) + struct.pack("<HBB3I", len(name), STREAM, 1, *links)
           + bytes(36) + struct.pack("<I", NOSTREAM) + bytes(8))  # fmt: skip
    return Dirent(raw, (name,))


def delete(root: Dirent, name: bytes) -> None:
    """`msi_dirent_delete`: drop the root's children whose name matches `name` over the
    shorter length (the C loop skips the child after each one it deletes).

    Raises:
        LayoutError: a storage matches (osslsigncode refuses to replace it).
    """
    i = 0
    while i < len(root.kids):
        kid = root.kids[i]
        n = min(len(kid.name), len(name))
        if kid.name[:n] == name[:n]:
            if kid.kind != STREAM:
                raise LayoutError("a storage's name matches a signature stream's")
            del root.kids[i]
        i += 1


def _sort_key(d: Dirent) -> tuple[int, tuple[int, ...]]:
    """`dirent_cmp_tree`: name length, then UTF-16 code units (no case folding)."""
    name = d.name
    return len(name), struct.unpack_from(f"<{len(name) // 2 - 1}H", name) if len(name) > 2 else ()


@dataclass
class Plan:
    """The file the writer produces, but for the streams' own bytes."""

    sector: int
    header: bytes = b""
    directory: bytes = b""
    dir_at: int = 0
    minifat: bytes = b""
    minifat_at: int = 0
    fat: bytes = b""
    fat_at: int = 0
    difat: bytes = b""
    large: list[tuple[int, int, Key]] = field(default_factory=list)  # (sector, size, stream)
    small: list[tuple[int, int, Key]] = field(default_factory=list)  # (mini stream offset, ...)
    mini_at: int = 0
    mini_len: int = 0
    length: int = 0

    def offset(self, sector: int) -> int:
        return (sector + 1) * self.sector


def write(  # noqa: PLR0915 - the writer's steps, in its order
    root: Dirent, sizes: dict[Key, int], sector: int, header: bytes
) -> Plan:
    """The layout `msi_file_write` makes of tree `root` (the signature streams already last)
    with streams of `sizes` bytes, `sector`-byte sectors; `header` is the input's first 512
    bytes (its minor version, byte order and mini sector shift are kept).

    Raises:
        LayoutError: a stream's size is unknown.
    """
    plan = Plan(sector)
    fat: list[int] = []
    minifat: list[int] = []
    num = mini_num = 0

    def streams(node: Dirent) -> None:
        nonlocal num, mini_num
        for kid in node.kids:
            if kid.kind == STORAGE:
                streams(kid)
                continue
            if kid.key not in sizes:
                raise LayoutError(f"stream {show_key(kid.key)} is not in the released file")
            size = sizes[kid.key]
            if size == 0:
                continue  # a null stream keeps its start sector
            kid.size = size
            count = -(-size // (MINI if size < CUTOFF else sector))
            if size < CUTOFF:
                kid.start = mini_num
                plan.small.append((plan.mini_len, size, kid.key))
                plan.mini_len += count * MINI
                minifat.extend(range(mini_num + 1, mini_num + count))
                minifat.append(ENDOFCHAIN)
                mini_num += count
            else:
                kid.start = num
                plan.large.append((num, size, kid.key))
                fat.extend(range(num + 1, num + count))
                fat.append(ENDOFCHAIN)
                num += count

    def chain(count: int) -> int:
        nonlocal num
        fat.extend(range(num + 1, num + count))
        fat.append(ENDOFCHAIN)
        at, num = num, num + count
        return at

    streams(root)
    plan.mini_at = root.start = chain(-(-plan.mini_len // sector))  # ministream_save
    if minifat:
        table = struct.pack(f"<{len(minifat) + 1}I", *minifat, ENDOFCHAIN)
        plan.minifat = table + b"\xff" * (-len(table) % sector)
        plan.minifat_at = chain(len(plan.minifat) // sector)
    root.size = plan.mini_len
    entries: list[bytes] = []
    _dirents(root, entries, [0], 0, last=False)
    entries += [bytes(0x44) + b"\xff" * 12 + bytes(0x30)] * (-len(entries) % (sector // ENTRY))
    plan.directory = b"".join(entries)
    plan.dir_at = chain(len(plan.directory) // sector)
    per = sector // 4
    fats = -(-(len(fat) * 4 + -(-len(fat) // per) * 4) // sector)  # fat_save's estimate
    difats = -(-(fats - IN_HEADER) // (per - 1)) if fats > IN_HEADER else 0
    plan.fat_at = num
    num += fats
    difat = b""
    index = num - (fats - IN_HEADER)
    for i in range(difats):
        row = [index + j if index + j < num - i else FREESECT for j in range(per - 1)]
        index += per - 1
        row.append(ENDOFCHAIN if i + 1 >= difats else num + 1)
        difat += struct.pack(f"<{per}I", *row)
        num += 1
    fat += [FATSECT] * fats + [DIFSECT] * difats
    fat += [FREESECT] * (-len(fat) % per)
    plan.fat, plan.difat = struct.pack(f"<{len(fat)}I", *fat), difat
    plan.length = plan.offset(plan.fat_at) + len(plan.fat) + len(difat)
    plan.header = _header(plan, header, fats, difats, mini=len(plan.minifat) // sector)
    return plan


def _dirents(d: Dirent, out: list[bytes], sid: list[int], count: int, *, last: bool) -> int:
    """`dirents_save`, quirks and all (a storage's right sibling counts only its own children)."""
    kids = sorted(d.kids, key=_sort_key)
    d.colour, d.links[0] = 1, NOSTREAM
    if d.kind == STORAGE and not last:
        count += len(kids)
        d.links[1] = (sid[0] + count + 1) & 0xFFFFFFFF
    else:
        d.links[1] = NOSTREAM
    d.links[2] = sid[0] + 1
    out.append(d.bytes())
    for i, kid in enumerate(kids):
        final = i == len(kids) - 1
        sid[0] += 1
        if kid.kind == STORAGE:
            count += _dirents(kid, out, sid, count, last=final)
        else:
            count = 0
            kid.colour, kid.links[0] = 1, NOSTREAM
            kid.links[1] = NOSTREAM if final else sid[0] + 1
            out.append(kid.bytes())
    return count


def _header(plan: Plan, source: bytes, fats: int, difats: int, *, mini: int) -> bytes:
    """`header_new` and `header_save`: the header sector."""
    v4 = plan.sector == 4096
    dirs = len(plan.directory) // plan.sector if v4 else 0
    difat = [plan.fat_at + i for i in range(min(fats, IN_HEADER))]
    difat += [FREESECT] * (IN_HEADER - len(difat))
    head = MAGIC + bytes(16) + source[0x18:0x1A] + struct.pack("<H", 4 if v4 else 3)
    head += source[0x1C:0x1E] + struct.pack("<H", 12 if v4 else 9) + source[0x20:0x22] + bytes(6)
    head += struct.pack("<4I", dirs, fats, plan.dir_at, 0)
    head += struct.pack("<3I", CUTOFF, plan.minifat_at if plan.minifat else ENDOFCHAIN, mini)
    head += struct.pack("<2I", plan.fat_at + fats if difats else ENDOFCHAIN, difats)
    return head + struct.pack(f"<{IN_HEADER}I", *difat) + bytes(plan.sector - HEADER)


@dataclass
class Input:
    """What the writer reads of a compound file: header, sector size, length, tree, and
    each stream's size and each entry's raw bytes by key."""

    header: bytes
    sector: int
    length: int
    tree: Dirent
    sizes: dict[Key, int]
    raws: dict[Key, bytes]


def _u32s(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 4}I", data))


def _directory(f: BinaryIO, header: bytes, sector: int, length: int) -> bytes:
    """The directory stream: its sectors followed through the FAT, reading only the FAT
    entries of its chain (olefile loads the whole FAT, in time quadratic in its size).

    Raises:
        LayoutError: a FAT or directory sector outside the file, or a chain that loops.
    """
    count = (length - sector) // sector
    per = sector // 4
    fats = _u32s(header[0x4C:HEADER])[: min(struct.unpack_from("<I", header, 0x2C)[0], 109)]
    difat, seen = struct.unpack_from("<I", header, 0x44)[0], set()
    while difat < count and len(fats) < struct.unpack_from("<I", header, 0x2C)[0]:
        if difat in seen:
            raise LayoutError("the DIFAT chain loops")
        seen.add(difat)
        f.seek((difat + 1) * sector)
        *more, difat = _u32s(f.read(sector))
        fats += more
    out, at, seen = [], struct.unpack_from("<I", header, 0x30)[0], set()
    while at != ENDOFCHAIN:
        if at >= count or at in seen or at // per >= len(fats) or fats[at // per] >= count:
            raise LayoutError(f"the directory's chain reaches sector {at:#x}")
        seen.add(at)
        f.seek((at + 1) * sector)
        out.append(f.read(sector))
        f.seek((fats[at // per] + 1) * sector + 4 * (at % per))
        at = struct.unpack("<I", f.read(4))[0]
    return b"".join(out)


def read_input(path: Path) -> Input:
    """Read `path` as osslsigncode's reader does (`msi_file_new`, `msi_dirent_new`).

    Raises:
        LayoutError: the file does not parse, or its tree is not one osslsigncode reads.
    """
    try:
        with path.open("rb") as f:
            header = f.read(HEADER)
            length = f.seek(0, 2)
            if (
                len(header) < HEADER
                or header[:8] != MAGIC
                or header[0x1E:0x20]
                not in (
                    b"\x09\x00",
                    b"\x0c\x00",
                )
            ):
                raise LayoutError(f"{path.name}: not a compound file osslsigncode reads")
            sector = 1 << header[0x1E]
            directory = _directory(f, header, sector, length)
    except OSError as exc:
        raise LayoutError(f"{path.name}: cannot be read: {exc}") from exc
    tree = read_tree(
        lambda sid: directory[sid * ENTRY : (sid + 1) * ENTRY], len(directory) // ENTRY
    )
    sizes: dict[Key, int] = {}
    raws: dict[Key, bytes] = {(): tree.raw}
    todo = [tree]
    while todo:
        node = todo.pop()
        for kid in node.kids:
            raws[kid.key] = kid.raw
            if kid.kind == STORAGE:
                todo.append(kid)
            else:
                sizes[kid.key] = kid.size
    return Input(header, sector, length, tree, sizes, raws)


def copy_tree(d: Dirent) -> Dirent:
    """A fresh copy of the tree `d` (the writer changes its entries' fields)."""
    return Dirent(d.raw, d.key, [copy_tree(k) for k in d.kids])


def signature_insert(tree: Dirent, extended: bool) -> Dirent:
    """A copy of `tree` after `signature_insert`: the signature streams removed from the
    root's children, then `MsiDigitalSignatureEx` (when signing with it) and
    `DigitalSignature` added last."""
    root = copy_tree(tree)
    delete(root, EXTENDED)
    delete(root, SIGNATURE)
    root.kids += [new_stream(EXTENDED)] * extended + [new_stream(SIGNATURE)]
    return root
