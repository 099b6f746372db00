"""The compound file osslsigncode writes when it signs an MSI, reproduced byte for byte.

Owns: `check_signer_layout`, which rebuilds what osslsigncode (`msi.c::msi_file_write`) writes
for a signed MSI and compares it with the released file, streamed. osslsigncode reads the
unsigned file's directory tree and writes a new compound file from it: the streams in the
order it read them (each storage's children in pre-order of the input's red-black tree: an
entry, its left subtree, its right subtree; storages recursively where met; at the root the
new `\\x05MsiDigitalSignatureEx` and `\\x05DigitalSignature` last), streams of 4096 bytes or
more each in whole sectors from sector 0 on, zero-padded, smaller ones into the mini stream
(64-byte mini sectors, zero-padded); then the mini stream, the MiniFAT (one ENDOFCHAIN more
and 0xFF up to the sector's end), the directory (the entries of each storage sorted by name
length and code points, written depth first, all black, chained by right siblings only,
unused entries to the sector's end), the FAT (its own FATSECT and DIFSECT entries, 0xFF up
to the sector's end) and DIFAT, and the header (the input's minor version, byte order and
mini sector shift; version 3 with 512-byte sectors or 4 with 4096). So the released file's
layout is a function of its streams, the entries' own fields and the rebuild's tree: a file
laid out otherwise carries bytes no stream or signature explains (the order of its sectors
alone can spell a message). Measured against osslsigncode 2.9's own output (plain, extended,
nested signatures, storages one deep, a 4096-byte-sector file).
Does not own: the entries' names, CLSIDs, times and stream bytes (`msisig` proves those),
reading the compound file (`ole`), when the check applies (`signing`: only when the sector
layout is left to the signature, not allowed by `archive.order`).
Other signers (signtool and Windows' own IStorage) lay files out otherwise: their layout is a
difference only `archive.order` allows.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import olefile

from reprover.compare.archives.listing import CHUNK, Member
from reprover.compare.archives.ole import ENTRY, NOSTREAM, entry_offset, msi_name
from reprover.errors import VerificationError

ENDOFCHAIN, FREESECT, FATSECT, DIFSECT = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFC
CUTOFF = 4096  # streams this long or longer go to whole sectors
STREAM, STORAGE, ROOT = 2, 1, 5
BLACK = 1
DIFAT_IN_HEADER = 109
# a piece of the file after its header: ("stream", path) in whole sectors, ("mini", [(path,
# size)]) the mini stream, ("bytes", data) a table or the directory, each to a sector's end
Piece = tuple[str, "str | list[tuple[str, int]] | bytes"]


@dataclass
class Entry:
    """One directory entry as osslsigncode holds it: the released raw bytes (name, type,
    CLSID, state bits, times) and, once placed, its new start sector and size."""

    raw: bytes
    path: str
    kids: list[Entry] = field(default_factory=list)  # in the input tree's pre-order
    start: int = 0
    size: int = 0

    @property
    def kind(self) -> int:
        return self.raw[0x42]

    @property
    def name(self) -> bytes:
        return self.raw[: int.from_bytes(self.raw[0x40:0x42], "little")]


def _preorder(read: dict[int, bytes], child: int, seen: set[int]) -> list[int]:
    """The sids of one storage's children as osslsigncode reads them: pre-order (an entry,
    its left subtree, its right subtree); `seen` holds every sid met so far in the file.

    Raises:
        VerificationError: an entry is met twice (a cycle) or is not in the directory.
    """
    out: list[int] = []
    todo = [child]
    while todo:
        sid = todo.pop()
        if sid == NOSTREAM:
            continue
        if sid in seen or sid not in read:
            raise VerificationError("the rebuilt MSI's directory tree cannot be walked")
        seen.add(sid)
        out.append(sid)
        raw = read[sid]
        todo += [int.from_bytes(raw[i : i + 4], "little") for i in (0x48, 0x44)]  # right, left
    return out


@dataclass
class Rebuilt:
    """What osslsigncode took from its input (the rebuild stands for it): each storage's
    children in reading order and raw entries by path ("" the root), and the header."""

    order: dict[str, list[str]]
    raw: dict[str, bytes]
    header: bytes


def read_rebuilt(path: Path) -> Rebuilt:
    """The rebuilt file's tree in osslsigncode's reading order, and its header.

    Raises:
        VerificationError: the file does not parse or its tree cannot be walked.
    """
    try:
        ole = olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT)
    except (OSError, ValueError, IndexError, RecursionError) as exc:
        raise VerificationError(f"{path.name}: not a compound file: {exc}") from exc
    with ole:
        read: dict[int, bytes] = {}
        names: dict[int, str] = {}
        for entry in ole.direntries:
            if entry is not None:
                ole.fp.seek(entry_offset(ole, entry.sid))
                read[entry.sid], names[entry.sid] = ole.fp.read(ENTRY), msi_name(entry.name)
        ole.fp.seek(0)
        header = ole.fp.read(512)
    order: dict[str, list[str]] = {}
    raw = {"": read[0]}
    todo, seen = [(0, "")], {0}
    while todo:
        sid, here = todo.pop()
        kids = _preorder(read, int.from_bytes(read[sid][0x4C:0x50], "little"), seen)
        prefix = here + "/" if here else ""
        order[here] = [prefix + names[k] for k in kids]
        raw.update((prefix + names[k], read[k]) for k in kids)
        todo += [(k, prefix + names[k]) for k in kids if read[k][0x42] == STORAGE]
    return Rebuilt(order, raw, header)


def _u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _chain(start: int, count: int) -> list[int]:
    """FAT or MiniFAT entries of `count` units from `start` on, as osslsigncode chains them
    (an empty run still ends its chain)."""
    return [start + i for i in range(1, count)] + [ENDOFCHAIN]


@dataclass
class _Writer:
    """osslsigncode's `MSI_OUT`: where everything goes, and the pieces of the file in order."""

    sector: int
    mini: int
    fat: list[int] = field(default_factory=list)
    minifat: list[int] = field(default_factory=list)
    sector_num: int = 0
    mini_num: int = 0
    small: list[tuple[str, int]] = field(default_factory=list)  # the mini stream's streams
    big: list[tuple[str, int]] = field(default_factory=list)  # streams in whole sectors
    directory: bytearray = field(default_factory=bytearray)

    def stream(self, entry: Entry, size: int) -> None:
        """`stream_handle` for one stream of `size` bytes."""
        entry.size = size
        if size < CUTOFF:
            entry.start, count = self.mini_num, -(-size // self.mini)
            self.small.append((entry.path, size))
            self.minifat += _chain(self.mini_num, count)
            self.mini_num += count
        else:
            entry.start, count = self.sector_num, -(-size // self.sector)
            self.big.append((entry.path, size))
            self.fat += _chain(self.sector_num, count)
            self.sector_num += count

    def run(self, entry: Entry, sizes: dict[str, int], given: dict[str, bytes]) -> None:
        """`stream_handle`: every stream where osslsigncode puts it, in its reading order.
        An empty stream keeps its input entry's start (`given`); a storage is recursed into."""
        for kid in entry.kids:
            if kid.kind == STORAGE:
                self.run(kid, sizes, given)
            elif sizes[kid.path]:
                self.stream(kid, sizes[kid.path])
            else:
                kid.start = int.from_bytes(given[kid.path][0x74:0x78], "little")

    def sectors(self, length: int) -> int:
        """Place `length` bytes in whole sectors from here, chained in the FAT; return where."""
        at, count = self.sector_num, -(-length // self.sector)
        self.fat += _chain(at, count)
        self.sector_num += count
        return at


def _tree_key(e: Entry) -> tuple[int, list[int]]:
    name = e.name
    return len(name), [
        int.from_bytes(name[i : i + 2], "little") for i in range(0, len(name) - 2, 2)
    ]


def _entry_bytes(e: Entry, left: int, right: int, child: int) -> bytes:
    """`msi_dirent_get`: the name, zero-filled, its length, type, black, the links, CLSID,
    state bits, times, start and the size's low half."""
    raw, name = e.raw, e.name
    return (name + bytes(64 - len(name)) + struct.pack("<HBB", len(name), e.kind, BLACK)
            + _u32(left, right, child) + raw[0x50:0x74] + _u32(e.start, e.size, 0))  # fmt: skip


def _dirents(w: _Writer, e: Entry, sid: list[int], count: int, *, last: bool) -> int:
    """`dirents_save`, count for count: osslsigncode's own sibling numbering (it links a
    storage's next sibling past its children's count)."""
    kids = sorted(e.kids, key=_tree_key)
    right = NOSTREAM
    if e.kind == STORAGE and not last:
        count += len(kids)
        right = sid[0] + count + 1
    w.directory += _entry_bytes(e, NOSTREAM, right, sid[0] + 1)
    for i, kid in enumerate(kids):
        final = i == len(kids) - 1
        sid[0] += 1
        if kid.kind == STORAGE:
            count += _dirents(w, kid, sid, count, last=final)
        else:
            count = 0
            w.directory += _entry_bytes(kid, NOSTREAM, NOSTREAM if final else sid[0] + 1, NOSTREAM)
    return count


def _tree(rebuilt: Rebuilt, released: dict[str, bytes], signatures: list[bytes]) -> Entry:
    """The tree osslsigncode writes: the rebuild's reading order, each entry's fields as
    released, the signature streams (every field zero) last at the root.

    Raises:
        VerificationError: an entry of the rebuild is missing from the released file.
    """

    def build(path: str, raw: bytes) -> Entry:
        entry = Entry(raw, path)
        if entry.kind == STORAGE:  # start and size as read
            given = rebuilt.raw[path]
            entry.start = int.from_bytes(given[0x74:0x78], "little")
            entry.size = int.from_bytes(given[0x78:0x7C], "little")
        for kid in rebuilt.order.get(path, []):
            if kid not in released:
                raise VerificationError(f"{kid!r} is not in the released file")
            entry.kids.append(build(kid, released[kid]))
        return entry

    root = build("", released[""])
    for name in signatures:  # `signature_insert`: new entries, every field zero
        raw = name + bytes(64 - len(name)) + struct.pack("<HBB", len(name), STREAM, BLACK)
        root.kids.append(Entry(raw + bytes(ENTRY - len(raw)), name.decode("utf-16-le")[:-1]))
    return root


def expected_layout(
    rebuilt: Rebuilt, released: dict[str, bytes], sizes: dict[str, int], sector: int,
    signatures: list[bytes],
) -> tuple[bytes, list[Piece]]:  # fmt: skip
    """The header and the pieces after it, in file order, of what osslsigncode writes.

    A piece is ("stream", path) for a stream in whole sectors, ("mini", streams) for the
    mini stream, ("bytes", data) for tables and the directory; each is zero-padded (tables:
    as written) to whole sectors.

    Raises:
        VerificationError: the trees do not match.
    """
    root = _tree(rebuilt, released, signatures)
    mini = 1 << int.from_bytes(rebuilt.header[0x20:0x22], "little")
    w = _Writer(sector, mini)
    w.run(root, sizes, rebuilt.raw)
    stream_len = sum(size + -size % mini for _, size in w.small)
    root.start, root.size = w.sectors(stream_len), stream_len  # `ministream_save`
    pieces: list[Piece] = [("stream", path) for path, _ in w.big]
    pieces.append(("mini", list(w.small)))
    minifat_at, minifat_count = ENDOFCHAIN, 0
    if w.minifat:  # `minifat_save`: one ENDOFCHAIN more, then 0xFF
        table = _u32(*w.minifat, ENDOFCHAIN)
        minifat_count = -(-len(table) // sector)
        minifat_at = w.sectors(len(table))
        pieces.append(("bytes", table + b"\xff" * (-len(table) % sector)))
    dir_at = w.sector_num
    _dirents(w, root, [0], 0, last=False)
    unused = bytes(0x44) + b"\xff" * 12 + bytes(ENTRY - 0x50)
    w.directory += unused * (-len(w.directory) % sector // ENTRY)
    dir_count = -(-len(w.directory) // sector)
    w.sectors(len(w.directory))
    pieces.append(("bytes", bytes(w.directory)))
    fat_count, difat, slots = _fat(w, pieces, sector)
    head = bytearray(rebuilt.header[:512])
    major, shift = (4, 12) if sector == 4096 else (3, 9)
    head[0x08:0x18] = bytes(16)
    head[0x1A:0x1C], head[0x1E:0x20] = struct.pack("<H", major), struct.pack("<H", shift)
    head[0x22:0x2C] = bytes(6) + _u32(dir_count if sector == 4096 else 0)
    head[0x2C:0x34] = _u32(fat_count, dir_at)
    head[0x34:0x4C] = _u32(0, CUTOFF, minifat_at, minifat_count, *difat)
    head[0x4C:0x200] = _u32(*slots)
    return bytes(head) + bytes(sector - 512), pieces


def _fat(w: _Writer, pieces: list[Piece], sector: int) -> tuple[int, tuple[int, int], list[int]]:
    """`fat_save`: the FAT's own sectors (its count as osslsigncode computes it), the DIFAT
    beyond 109 of them, their FATSECT and DIFSECT entries, 0xFF to the sector's end; return
    the FAT's sector count, the DIFAT's start and count, and the header's 109 slots."""
    used = 4 * len(w.fat)
    count = (used + -(-used // sector) * 4 + sector - 1) // sector
    per = sector // 4 - 1
    difat_count = -(-(count - DIFAT_IN_HEADER) // per) if count > DIFAT_IN_HEADER else 0
    first = w.sector_num
    slots = [first + i for i in range(min(count, DIFAT_IN_HEADER))]
    slots += [FREESECT] * (DIFAT_IN_HEADER - len(slots))
    w.sector_num += count
    difat_at, difat = ENDOFCHAIN, b""
    if difat_count:
        difat_at = w.sector_num
        index, end = first + DIFAT_IN_HEADER, first + count
        for i in range(difat_count):
            ids = [index + j if index + j < end else FREESECT for j in range(per)]
            index += per
            following = ENDOFCHAIN if i + 1 >= difat_count else w.sector_num + 1
            difat += _u32(*ids, following)
            w.sector_num += 1
    table = _u32(*w.fat, *[FATSECT] * count, *[DIFSECT] * difat_count)
    table += b"\xff" * (-len(table) % sector)
    pieces.append(("bytes", table + difat))
    return count, (difat_at, difat_count), slots


def _content(members: dict[str, Member], path: str, size: int) -> Iterator[bytes]:
    member = members.get(path)
    if member is None or member.opener is None:
        raise VerificationError(f"stream {path!r} cannot be read")
    seen = 0
    for block in member.opener():
        seen += len(block)
        yield block
    if seen != size:
        raise VerificationError(f"stream {path!r} holds {seen} bytes, its entry says {size}")


def _chunks(
    pieces: list[Piece], members: dict[str, Member], sizes: dict[str, int], units: tuple[int, int]
) -> Iterator[tuple[str, bytes]]:
    """The file osslsigncode writes after its header, piece by piece: (what, bytes);
    `units` are the sector and mini sector sizes."""
    sector, mini = units
    for kind, what in pieces:
        if kind == "stream":
            assert isinstance(what, str)  # noqa: S101 - the piece's shape
            for block in _content(members, what, sizes[what]):
                yield f"stream {what!r}", block
            yield f"the padding after stream {what!r}", bytes(-sizes[what] % sector)
        elif kind == "mini":
            assert isinstance(what, list)  # noqa: S101
            total = 0
            for path, size in what:
                for block in _content(members, path, size):
                    yield f"stream {path!r} in the mini stream", block
                yield "the mini stream", bytes(-size % mini)
                total += size + -size % mini
            yield "the mini stream's padding", bytes(-total % sector)
        else:
            assert isinstance(what, bytes)  # noqa: S101
            yield "the allocation tables or the directory", what


def check_signer_layout(
    released: Path, rebuilt: Rebuilt, entries: dict[str, bytes], members: dict[str, Member],
    signatures: list[bytes],
) -> None:  # fmt: skip
    """The released file must be, byte for byte, what osslsigncode writes when it signs:
    its streams (`members`, by path) and entries' fields (`entries`: raw entries by path, ""
    the root) laid out in the rebuild's reading order, with the signature streams
    (`signatures`: raw names, in the order osslsigncode adds them).

    Raises:
        VerificationError: it is not; says where the first difference is.
    """
    with released.open("rb") as f:
        head = f.read(512)
        shift = int.from_bytes(head[0x1E:0x20], "little")
        if shift not in (9, 12):
            raise VerificationError(f"a sector shift of {shift} is not what osslsigncode writes")
        sector = 1 << shift
        mini = 1 << int.from_bytes(rebuilt.header[0x20:0x22], "little")
        sizes = {p: int.from_bytes(raw[0x78:0x7C], "little") for p, raw in entries.items()}
        top, pieces = expected_layout(rebuilt, entries, sizes, sector, signatures)
        f.seek(0)
        at = 0
        chunks = _chunks(pieces, members, sizes, (sector, mini))
        for what, block in itertools.chain([("the header", top)], chunks):
            for start in range(0, len(block), CHUNK):
                want = block[start : start + CHUNK]
                got = f.read(len(want))
                if got != want:
                    pairs = enumerate(zip(got, want, strict=False))
                    first = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
                    raise VerificationError(
                        f"the released file is not laid out as osslsigncode writes it: byte "
                        f"{at + start + first} ({what}) differs; another layout (sector "
                        "order, tables, directory) carries bytes no stream or signature "
                        "explains (a file another tool signed, such as signtool: allow "
                        "archive.order in `diff` to leave its layout unchecked)"
                    )
            at += len(block)
        if f.read(1):
            raise VerificationError(
                f"the released file goes on after the {at} bytes osslsigncode writes"
            )
