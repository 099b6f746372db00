"""The compound-file layout osslsigncode writes when it signs an MSI, and the check that a
signed MSI is exactly that layout.

Owns: a port of osslsigncode 2.x's MSI writer (`msi.c`: `msi_dirent_new`, `signature_insert`,
`stream_handle`, `ministream_save`, `minifat_save`, `dirtree_save`/`dirents_save`, `fat_save`,
`header_save`, `msiout_set`), and `require_signer_layout`. osslsigncode rewrites the whole
compound file when it signs: the file is a function of its INPUT's directory tree (a storage's
children in the order `msi_dirent_new` finds them: an entry, then its left sibling's subtree,
then its right sibling's; the signature streams removed and `MsiDigitalSignatureEx` then
`DigitalSignature` put last among the root's children), of the input's header and length (a
file over 7,143,936 bytes with its signature is written with 4096-byte sectors, version 4), and
of the content (names, sizes, CLSIDs, state bits, times). Large streams are written one after
the other, each contiguous; small ones into the mini stream, each contiguous; then the mini
stream, the MiniFAT, the directory (every entry black, a storage's children a list through
right siblings sorted by name length then UTF-16 code units), the FAT, the DIFAT. No library
writes this (olefile, libgsf and Windows each place sectors their own way), hence the port.

The released file IS that layout when its header sector, directory, MiniFAT, FAT and DIFAT are
byte for byte the port's, its length is the port's, and every byte between a stream's end and
its next sector (or mini sector, or the mini stream's end) is zero: the tables then place every
stream exactly where the writer puts it, so the stream sectors hold the released streams'
content (which `msisig` proves to be the rebuild's), and nothing else remains. Without this a
signed MSI's sector arrangement is free: log2(n!) bits for n sectors, invisible to
`osslsigncode verify` (the signature hashes stream contents, not their placement).

Two orders are osslsigncode's: signing the rebuild (its tree's order) and signing a file
osslsigncode wrote (a nested signature, `-nest`, or a re-signature: the first pass's sorted list);
both are tried, a choice of one bit. The version (sector size) is the writer's rule; the input's
exact length is unknown when a member differs (a signed DLL packed before signing) or for a
re-signature, and within that uncertainty near the 7,143,936-byte threshold both sizes are taken.
Does not own: whether the streams' content is the rebuild's, the signature (`msisig`), reading
the listing (`ole`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import olefile

from reprover.errors import VerificationError

NOSTREAM = FREESECT = 0xFFFFFFFF
ENDOFCHAIN, FATSECT, DIFSECT = 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC
STORAGE, STREAM = 1, 2
CUTOFF, MINI, HEADER, ENTRY, IN_HEADER = 4096, 64, 512, 128, 109
THRESHOLD = 7143936  # `msiout_set`: over this (input + signature) the file gets 4096-byte sectors
SIGNATURE = "\x05DigitalSignature".encode("utf-16-le") + b"\0\0"
EXTENDED = "\x05MsiDigitalSignatureEx".encode("utf-16-le") + b"\0\0"
MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
BLOCK = 1 << 16
FIELDS = ((0x40, "name"), (0x42, "name length"), (0x43, "type"), (0x44, "colour"),
          (0x48, "left sibling"), (0x4C, "right sibling"), (0x50, "child"), (0x60, "CLSID"),
          (0x64, "state bits"), (0x6C, "creation time"), (0x74, "modification time"),
          (0x78, "start sector"), (0x80, "size"))  # fmt: skip
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


def _new_stream(name: bytes) -> Dirent:
    """`dirent_add`: a fresh black stream entry, no times, no CLSID."""
    links = [NOSTREAM] * 3
    raw = (name + bytes(64 - len(name)) + struct.pack("<HBB3I", len(name), STREAM, 1, *links)
           + bytes(36) + struct.pack("<I", NOSTREAM) + bytes(8))  # fmt: skip
    return Dirent(raw, (name,))


def _delete(root: Dirent, name: bytes) -> None:
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
                raise LayoutError(f"stream {_show(kid.key)} is not in the released file")
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


def read_input(path: Path) -> Input:
    """Read `path` as osslsigncode's reader does (`msi_file_new`, `msi_dirent_new`).

    Raises:
        LayoutError: the file does not parse, or its tree is not one osslsigncode reads.
    """
    try:
        with path.open("rb") as f:
            header = f.read(HEADER)
            length = f.seek(0, 2)
        with olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT) as ole:
            fp, sector = ole.directory_fp, ole.sectorsize

            def read(sid: int) -> bytes:
                fp.seek(sid * ENTRY)
                return bytes(fp.read(ENTRY))

            tree = read_tree(read, fp.size // ENTRY)
    except (OSError, ValueError, IndexError, RecursionError) as exc:
        raise LayoutError(f"{path.name}: not a compound file: {exc}") from exc
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


def _released(node: Dirent, raws: dict[Key, bytes]) -> Dirent:
    """The rebuild's tree `node` (its order, and the start and size its entries had as input)
    with each entry's own fields (name, type, CLSID, state bits, times) as released: those
    are compared on their own (`msisig`, the archive comparison); this module checks placement.

    Raises:
        LayoutError: an entry of the rebuild is not in the released file.
    """
    if node.key not in raws:
        raise LayoutError(f"the rebuild's entry {_show(node.key)} is not in the released file")
    raw = raws[node.key][:0x74] + node.raw[0x74:]
    return Dirent(raw, node.key, [_released(k, raws) for k in node.kids])


def _show(key: Key) -> str:
    return repr("/".join(n[:-2].decode("utf-16-le", "replace") for n in key))


def _copy(d: Dirent) -> Dirent:
    return Dirent(d.raw, d.key, [_copy(k) for k in d.kids])


def _signed(tree: Dirent, extended: bool) -> Dirent:
    """A copy of `tree` after `signature_insert`: the signature streams removed from the
    root's children, then `MsiDigitalSignatureEx` (when signing with it) and
    `DigitalSignature` added last."""
    root = _copy(tree)
    _delete(root, EXTENDED)
    _delete(root, SIGNATURE)
    root.kids += [_new_stream(EXTENDED)] * extended + [_new_stream(SIGNATURE)]
    return root


def _promoted(lo: int, hi: int, signature: int, extended: int, sector: int) -> set[int]:
    """`msiout_set`'s sector sizes for an input of `lo` to `hi` bytes and sector size `sector`."""
    if sector == 4096:
        return {4096}
    add = -(-signature // (MINI if signature <= CUTOFF else sector)) * (
        MINI if signature <= CUTOFF else sector
    )
    add += -(-extended // MINI) * MINI
    return {4096 if n + add > THRESHOLD else sector for n in (lo, hi)}


def require_signer_layout(released: Path, rebuilt: Path) -> None:
    """Require the signed `released` MSI to be the file osslsigncode writes when it signs
    `rebuilt` (or signs again a file it wrote from it), given the released streams' sizes.

    Raises:
        LayoutError: it is not; the message names the first difference.
    """
    rel, reb = read_input(released), read_input(rebuilt)
    signature, extended = rel.sizes.get((SIGNATURE,), 0), rel.sizes.get((EXTENDED,), 0)
    sizes = dict(rel.sizes)
    drift = sum(abs(n - reb.sizes.get(k, 0)) + 2 * 4096 for k, n in sizes.items()
                if k[0] not in (SIGNATURE, EXTENDED) and n != reb.sizes.get(k, 0))  # fmt: skip
    once = _signed(_released(reb.tree, rel.raws), bool(extended))
    candidates = [("signing the rebuild", once,
                   _promoted(reb.length - drift, reb.length + drift, signature, extended,
                             reb.sector))]  # fmt: skip
    try:
        first = write(_copy(once), sizes, reb.sector, reb.header)
        raw = first.directory
        again = read_tree(lambda sid: raw[sid * ENTRY : (sid + 1) * ENTRY], len(raw) // ENTRY)
    except LayoutError:
        pass  # osslsigncode could not read the file it wrote (nested storages): no second pass
    else:
        margin = drift + signature + 2 * 4096  # the first signature's length is not known
        sectors = _promoted(reb.length - drift, reb.length + drift, signature, extended,
                            reb.sector)  # fmt: skip
        for s in set(sectors):
            sectors |= _promoted(first.length - margin, first.length + margin, signature,
                                 extended, s)  # fmt: skip
        candidates.append(("signing again a file it wrote (a nested signature)",
                           _signed(again, bool(extended)), sectors))  # fmt: skip
    errors = []
    with released.open("rb") as f:
        for label, tree, allowed in candidates:
            if rel.sector not in allowed:
                sizes_ = " or ".join(str(s) for s in sorted(allowed))
                errors.append(f"{label} writes {sizes_}-byte sectors, the file has "
                              f"{rel.sector}-byte ones")  # fmt: skip
                continue
            try:
                compare(f, rel.length, write(_copy(tree), sizes, rel.sector, reb.header))
            except LayoutError as exc:
                errors.append(f"{label}: {exc}")
            else:
                return
    raise LayoutError(
        f"the released file is not laid out as osslsigncode writes it: {errors[0]}; another "
        "layout (sector order, tables, directory) carries bytes no stream or signature "
        "explains (a file another tool signed, such as signtool: allow archive.order in "
        "`diff` to leave its layout unchecked)"
    )


def compare(f: BinaryIO, length: int, plan: Plan) -> None:
    """Require the file `f` (`length` bytes) to be `plan`: the header sector, directory and
    tables byte for byte, every byte after a stream's end up to its next (mini) sector zero,
    the length; read in blocks.

    Raises:
        LayoutError: a byte differs; the message names where.
    """
    if length != plan.length:
        raise LayoutError(f"the file is {length} bytes, osslsigncode writes {plan.length}")
    _same(f, 0, plan.header, _header_field)
    _same(f, plan.offset(plan.dir_at), plan.directory, _entry_field(plan.directory))
    if plan.minifat:
        _same(f, plan.offset(plan.minifat_at), plan.minifat,
              lambda at: f"the MiniFAT's entry {at // 4}")  # fmt: skip
    _same(f, plan.offset(plan.fat_at), plan.fat, lambda at: f"the FAT's entry {at // 4}")
    _same(f, plan.offset(plan.fat_at) + len(plan.fat), plan.difat,
          lambda at: f"the DIFAT's entry {at // 4}")  # fmt: skip
    ss = plan.sector
    for sector, size, key in plan.large:
        _zero(f, plan.offset(sector) + size, -size % ss, f"stream {_show(key)}")
    mini = plan.offset(plan.mini_at)
    for offset, size, key in plan.small:
        _zero(f, mini + offset + size, -size % MINI, f"stream {_show(key)}")
    _zero(f, mini + plan.mini_len, -plan.mini_len % ss, "the mini stream")


def _blocks(f: BinaryIO, at: int, length: int) -> Iterator[tuple[int, bytes]]:
    f.seek(at)
    done = 0
    while done < length:
        block = f.read(min(BLOCK, length - done))
        if not block:
            raise LayoutError(f"the file ends at byte {at + done}")
        yield done, block
        done += len(block)


def _same(f: BinaryIO, at: int, expected: bytes, where: Callable[[int], str]) -> None:
    for done, block in _blocks(f, at, len(expected)):
        want = expected[done : done + len(block)]
        if block != want:
            i = done + next(i for i, (a, b) in enumerate(zip(block, want, strict=True)) if a != b)
            raise LayoutError(f"{where(i)} (byte {at + i}) is {block[i - done]:#04x}, "
                              f"osslsigncode writes {want[i - done]:#04x}")  # fmt: skip


def _zero(f: BinaryIO, at: int, length: int, what: str) -> None:
    for done, block in _blocks(f, at, length):
        if block.strip(b"\0"):
            raise LayoutError(f"byte {at + done} after the end of {what} is not zero")


HEADER_FIELDS = ((0x08, "signature"), (0x18, "CLSID"), (0x1A, "minor version"),
                 (0x1C, "major version"), (0x1E, "byte order"), (0x20, "sector shift"),
                 (0x22, "mini sector shift"), (0x28, "reserved bytes"),
                 (0x2C, "directory sector count"), (0x30, "FAT sector count"),
                 (0x34, "first directory sector"), (0x38, "transaction number"),
                 (0x3C, "mini stream cutoff"), (0x40, "first MiniFAT sector"),
                 (0x44, "MiniFAT sector count"), (0x48, "first DIFAT sector"),
                 (0x4C, "DIFAT sector count"), (HEADER, "DIFAT"))  # fmt: skip


def _header_field(at: int) -> str:
    if at >= HEADER:
        return "the header sector's padding"
    name = next(n for end, n in HEADER_FIELDS if at < end)
    return f"the header's {name}"


def _entry_field(directory: bytes) -> Callable[[int], str]:
    def where(at: int) -> str:
        sid, off = divmod(at, ENTRY)
        raw = directory[sid * ENTRY : (sid + 1) * ENTRY]
        length = min(struct.unpack_from("<H", raw, 0x40)[0], 64)
        name = raw[: max(length - 2, 0)].decode("utf-16-le", "replace") or "(unused)"
        what = next(n for end, n in FIELDS if off < end)
        return f"directory entry {sid} ({name!r})'s {what}"

    return where
