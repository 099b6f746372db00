"""The MSI tables restating files of the embedded cabinet: `File` and `MsiFileHash`.

Owns: `explain`, the rule for one of those table streams (`!File`, `!MsiFileHash`) whose bytes
differ. `File.FileSize` states a file's size and `MsiFileHash.HashPart1..4` its MD5 (four
little-endian signed 32-bit values), for the cabinet member named by the row's key
(`File`, `File_`). The tables are read by `msitables`; the string pool and the column
catalogue must be identical on both sides (then a row's cells compare by their stored bytes).
Row by row, the released table must be the rebuilt one, cell for cell, except that the row of
a member whose content differs and is accepted holds the released content's size or MD5
(and the rebuilt row the rebuilt content's); `MsiFileHash.Options` is 0. A row whose key names
no member of the cabinet, a key twice, another row count: not explained.
Does not own: tying members to scopes (`restated`), reading the compound file (`ole`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reprover.compare.archives.listing import Listing, quote
from reprover.compare.archives.msitables import MAX_STREAM, BadTable, Database, Table, stored_i4
from reprover.compare.archives.restatefmt import NotRestated
from reprover.model import ACCEPTED, ArtifactVerdict, Cause, Difference, Kind

if TYPE_CHECKING:
    from reprover.compare.archives.restated import Changed

TABLES = {"!File": ("File", "File"), "!MsiFileHash": ("MsiFileHash", "File_")}
DATABASE = ("!_StringPool", "!_StringData", "!_Columns")
HASH = ("HashPart1", "HashPart2", "HashPart3", "HashPart4")


def _stream(listing: Listing, name: str) -> bytes:
    found = [m for m in listing.members if m.name == name]
    if len(found) != 1 or found[0].opener is None:
        raise NotRestated(f"the database has {len(found)} stream(s) {name}")
    opener = found[0].opener
    out = bytearray()
    for block in opener():
        out += block
        if len(out) > MAX_STREAM:
            raise NotRestated(f"{name} is larger than {MAX_STREAM} bytes: not read")
    return bytes(out)


def explain(
    stream: str, listings: tuple[Listing, Listing], data: tuple[bytes, bytes],
    changed: dict[str, Changed], names: tuple[set[str], set[str]],
) -> tuple[list[Difference], str]:  # fmt: skip
    """The consequences table stream `stream` holds, and a note; see the module doc.

    Raises:
        NotRestated: not explained (why).
    """
    table_name, key_column = TABLES[stream]
    raw = [tuple(_stream(x, n) for n in DATABASE) for x in listings]
    if raw[0] != raw[1]:
        raise NotRestated("the string pool or column catalogue differs: rows cannot be compared")
    try:
        db = Database(*raw[1])
        released, rebuilt = (db.table(table_name, d) for d in data)
        key_at = rebuilt.index(key_column)
    except BadTable as exc:
        raise NotRestated(f"the MSI database is not read: {exc}") from exc
    if len(released.rows) != len(rebuilt.rows):
        raise NotRestated(f"{table_name} has {len(released.rows)} rows, rebuilt "
                          f"{len(rebuilt.rows)}")  # fmt: skip
    out: list[Difference] = []
    seen: set[str] = set()
    undecided: list[str] = []
    for row_a, row_b in zip(released.rows, rebuilt.rows, strict=True):
        key = _key(db, row_b[key_at][1], table_name)
        if key in seen or key not in names[0] or key not in names[1]:
            why = "twice" if key in seen else "but the cabinet has no such member"
            raise NotRestated(f"{table_name} names {quote(key)!r} {why}")
        seen.add(key)
        cells, free = _row_cells(rebuilt, key, changed.get(key), undecided)
        for i, (a, b) in enumerate(zip(row_a, row_b, strict=True)):
            if i not in cells and i not in free and a[1] != b[1]:
                column = rebuilt.columns[i].name
                raise NotRestated(f"{table_name}[{quote(key)}].{column} differs but the "
                                  "member's content does not explain it")  # fmt: skip
        for i, (want_a, want_b) in cells.items():
            column = rebuilt.columns[i].name
            if row_b[i][1] != want_b:
                raise NotRestated(f"the rebuilt {table_name}[{quote(key)}].{column} does not "
                                  "state the rebuilt content")  # fmt: skip
            if row_a[i][1] != want_a:
                stale = " (stale)" if row_a[i][1] == row_b[i][1] else ""
                raise NotRestated(f"the released {table_name}[{quote(key)}].{column} is not "
                                  f"the released content's value{stale}")  # fmt: skip
            if want_a != want_b:
                c = changed[key]
                out.append(Difference(
                    row_a[i][0], row_a[i][2], f"msi.{table_name}[{quote(key)}].{column}",
                    Kind.DATA, allowed=True, cause=Cause.CONSEQUENCE,
                    rule=f"restates {c.path} ({c.verdict.value})",
                    detail=f"{column} of the released content of {c.path}",
                ))  # fmt: skip
    if undecided or not out:  # no row restated: a defence, unreachable while the rows cover
        # every byte of the table stream
        why = "; ".join(undecided) or "no row names a member whose content differs"
        raise NotRestated(why, undecided=bool(undecided))
    note = (f"{table_name}: released = rebuilt with the {'size' if table_name == 'File' else 'MD5'}"
            f" of {len({d.rule for d in out})} member(s) whose content differs and is accepted, "
            "computed from the released content; every other cell identical")  # fmt: skip
    return out, note


def _key(db: Database, ref: int, table: str) -> str:
    try:
        key = db.string(ref)
    except BadTable as exc:
        raise NotRestated(f"{table}: {exc}") from exc
    if key is None:
        raise NotRestated(f"{table} has a row with a null key")
    return key


def _row_cells(
    table: Table, key: str, member: Changed | None, undecided: list[str]
) -> tuple[dict[int, tuple[int, int]], set[int]]:
    """`_restated` of `key`'s row, and the cells that may hold anything because they restate
    an undecided file (noted in `undecided`): every other cell is still checked, so a forged
    cell beside an undecided file is `different`, not `inconclusive`.

    Raises:
        NotRestated: the member is not accepted; bad Options.
    """
    if member is not None and member.verdict is ArtifactVerdict.INCONCLUSIVE:
        undecided.append(f"{member.path}, named by {quote(key)!r}, is not decided")
        return {}, set(_restated(table, key, None, undecided=True))
    return _restated(table, key, member), set()


def _restated(
    table: Table, key: str, changed: Changed | None, *, undecided: bool = False
) -> dict[int, tuple[int, int]]:
    """The cells of `key`'s row that restate its member: column -> (released, rebuilt) stored
    values they must hold (with `undecided`, only which cells: the values are 0).
    Raises: NotRestated (the member is not accepted; bad Options)."""
    if undecided:
        columns = ("FileSize",) if table.name == "File" else ("Options", *HASH)
        return {table.index(c): (0, 0) for c in columns}
    if changed is None:
        return {}
    if changed.verdict not in ACCEPTED or changed.released is None or changed.rebuilt is None:
        raise NotRestated(f"{changed.path}, named by {quote(key)!r}, is "
                          f"{changed.verdict.value}: not accepted")  # fmt: skip
    if table.name == "File":
        sizes = changed.released.size, changed.rebuilt.size
        return {table.index("FileSize"): (stored_i4(sizes[0]), stored_i4(sizes[1]))}
    assert changed.md5 is not None  # noqa: S101 - registered with the msi scope
    cells = {table.index("Options"): (0x8000, 0x8000)}  # Options 0, stored with 0x8000 added
    parts = [_parts(h) for h in changed.md5]
    for n, column in enumerate(HASH):
        cells[table.index(column)] = (parts[0][n], parts[1][n])
    return cells


def _parts(md5_hex: str) -> Sequence[int]:
    """An MD5 as MsiFileHash stores it: four little-endian signed i4, each biased."""
    return [stored_i4(v) for v in struct.unpack("<4i", bytes.fromhex(md5_hex))]
