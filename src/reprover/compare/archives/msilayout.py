"""The check that a signed MSI is exactly the compound file osslsigncode writes.

Owns: `require_signer_layout`. The released file IS the writer's (`msiwriter`, a port of
osslsigncode 2.x) when its header sector, directory, MiniFAT, FAT and DIFAT are byte for byte
the port's, its length is the port's, and every byte between a stream's end and its next
sector (or mini sector, or the mini stream's end) is zero: the tables then place every stream
exactly where the writer puts it, so the stream sectors hold the released streams' content
(which `msisig` proves to be the rebuild's), and nothing else remains. Only tables and padding
are read, in blocks. Without this a signed MSI's sector arrangement is free: log2(n!) bits for
n sectors, invisible to `osslsigncode verify` (the signature hashes stream contents, not their
placement). The writer's input is the rebuild's tree (its order, the start and size its entries
had) with each entry's own fields as released (names, CLSIDs, state bits and times are compared
on their own, by `msisig` and the archive comparison).
Two orders are osslsigncode's: signing the rebuild and signing a file osslsigncode wrote (a
nested signature, `-nest`, or a re-signature: the first pass's sorted list); both are tried, a
choice of one bit. The sector size is the writer's rule (`msiout_set`: 4096 when the input and
its signature pass 7,143,936 bytes); the input's exact length is unknown when a stream differs
(a signed DLL packed before signing) or for a re-signature, and when the threshold lies within
that uncertainty both sizes are taken (one bit, only near 7 MB).
Does not own: the writer (`msiwriter`), whether the streams' content is the rebuild's and the
signature (`msisig`), reading the listing (`ole`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from reprover.compare.archives.msiwriter import (
    CUTOFF,
    EXTENDED,
    HEADER,
    MINI,
    SIGNATURE,
    Dirent,
    Key,
    LayoutError,
    Plan,
    copy_tree,
    read_input,
    read_tree,
    show_key,
    signature_insert,
    write,
)
from reprover.compare.archives.ole import ENTRY, msi_name

THRESHOLD = 7143936  # `msiout_set`: over this (input + signature) the file gets 4096-byte sectors
BLOCK = 1 << 16
FIELDS = ((0x40, "name"), (0x42, "name length"), (0x43, "type"), (0x44, "colour"),
          (0x48, "left sibling"), (0x4C, "right sibling"), (0x50, "child"), (0x60, "CLSID"),
          (0x64, "state bits"), (0x6C, "creation time"), (0x74, "modification time"),
          (0x78, "start sector"), (0x80, "size"))  # fmt: skip


def released_tree(node: Dirent, raws: dict[Key, bytes]) -> Dirent:
    """The rebuild's tree `node` (its order, and the start and size its entries had as input)
    with each entry's own fields (name, type, CLSID, state bits, times) as released: those
    are compared on their own (`msisig`, the archive comparison); this module checks placement.

    Raises:
        LayoutError: an entry of the rebuild is not in the released file.
    """
    if node.key not in raws:
        raise LayoutError(f"the rebuild's entry {show_key(node.key)} is not in the released file")
    raw = raws[node.key][:0x74] + node.raw[0x74:]
    return Dirent(raw, node.key, [released_tree(k, raws) for k in node.kids])


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
    once = signature_insert(released_tree(reb.tree, rel.raws), bool(extended))
    candidates = [("signing the rebuild", once,
                   _promoted(reb.length - drift, reb.length + drift, signature, extended,
                             reb.sector))]  # fmt: skip
    try:
        first = write(copy_tree(once), sizes, reb.sector, reb.header)
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
                           signature_insert(again, bool(extended)), sectors))  # fmt: skip
    errors = []
    with released.open("rb") as f:
        for label, tree, allowed in candidates:
            if rel.sector not in allowed:
                sizes_ = " or ".join(str(s) for s in sorted(allowed))
                errors.append(f"{label} writes {sizes_}-byte sectors, the file has "
                              f"{rel.sector}-byte ones")  # fmt: skip
                continue
            try:
                compare(f, rel.length, write(copy_tree(tree), sizes, rel.sector, reb.header))
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
        _same(f, plan.offset(plan.minifat_at), plan.minifat, _table("MiniFAT"))
    _same(f, plan.offset(plan.fat_at), plan.fat, _table("FAT"))
    _same(f, plan.offset(plan.fat_at) + len(plan.fat), plan.difat, _table("DIFAT"))
    ss = plan.sector
    for sector, size, key in plan.large:
        _zero(f, plan.offset(sector) + size, -size % ss, f"stream {show_key(key)}")
    mini = plan.offset(plan.mini_at)
    for offset, size, key in plan.small:
        _zero(f, mini + offset + size, -size % MINI, f"stream {show_key(key)}")
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


Where = Callable[[int], tuple[str, int, int]]  # a byte's field: (what, start, end)


def _same(f: BinaryIO, at: int, expected: bytes, where: Where) -> None:
    """Require the `len(expected)` bytes at `at` to be `expected`, read in blocks.

    Raises:
        LayoutError: they are not; names the first differing field and both its values.
    """
    for done, block in _blocks(f, at, len(expected)):
        want = expected[done : done + len(block)]
        if block != want:
            i = done + next(i for i, (a, b) in enumerate(zip(block, want, strict=True)) if a != b)
            what, start, end = where(i)
            f.seek(at + start)
            raise LayoutError(f"{what} (byte {at + start}) is {_value(f.read(end - start))}, "
                              f"osslsigncode writes {_value(expected[start:end])}")  # fmt: skip


def _value(raw: bytes) -> str:
    if len(raw) in (1, 2, 4, 8):
        return hex(int.from_bytes(raw, "little"))
    return raw[:16].hex() + ("..." if len(raw) > 16 else "")


def _table(name: str) -> Where:
    return lambda at: (f"the {name}'s entry {at // 4}", at - at % 4, at - at % 4 + 4)


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


def _field(fields: tuple[tuple[int, str], ...], at: int) -> tuple[str, int, int]:
    """The field (name, start, end) of `fields` ((end, name) in order) that holds byte `at`."""
    start = 0
    for end, name in fields:
        if at < end:
            return name, start, end
        start = end
    raise ValueError(at)


def _header_field(at: int) -> tuple[str, int, int]:
    if at >= HEADER:
        return "the header sector's padding", at, at + 1
    if at >= 0x4C:
        slot = (at - 0x4C) // 4
        return f"the header's DIFAT entry {slot}", 0x4C + 4 * slot, 0x50 + 4 * slot
    name, start, end = _field(HEADER_FIELDS, at)
    return f"the header's {name}", start, end


def _entry_field(directory: bytes) -> Where:
    def where(at: int) -> tuple[str, int, int]:
        sid, off = divmod(at, ENTRY)
        raw = directory[sid * ENTRY : (sid + 1) * ENTRY]
        length = min(struct.unpack_from("<H", raw, 0x40)[0], 64)
        name = msi_name(raw[: max(length - 2, 0)].decode("utf-16-le", "replace")) or "unused"
        what, start, end = _field(FIELDS, off)
        return f"directory entry {sid} ({name!r})'s {what}", sid * ENTRY + start, sid * ENTRY + end

    return where
