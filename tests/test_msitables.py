"""The strict MSI table reader against msitools' msiinfo (the oracle), and what it refuses."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from reprover.compare.archives.limits import Budget, Limits
from reprover.compare.archives.msitables import BadTable, Database
from reprover.compare.archives.ole import read_ole
from restated_support import MSI_DLL, msi_table

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None, reason="wixl is in .ci/apt-packages.txt"
)


def _streams(msi: Path) -> dict[str, bytes]:
    size = msi.stat().st_size
    with msi.open("rb") as f:
        listing = read_ole(f, size, Budget(Limits(), size))
        return {m.name: b"".join(m.opener()) for m in listing.members if m.opener is not None}


@pytest.fixture(scope="module")
def msi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    from archive_support import write_msi

    path = write_msi(tmp_path_factory.mktemp("msi") / "setup.msi", MSI_DLL.read_bytes())
    return path, _streams(path)


def _db(s: dict[str, bytes], **over: bytes) -> Database:
    parts = {"pool": s["!_StringPool"], "data": s["!_StringData"], "columns": s["!_Columns"]}
    parts.update(over)
    return Database(parts["pool"], parts["data"], parts["columns"])


@pytest.mark.parametrize("table", ["File", "MsiFileHash", "Component", "Media", "Directory"])
def test_tables_read_as_msiinfo_exports_them(msi, table: str) -> None:
    path, streams = msi
    db = _db(streams)
    t = db.table(table, streams[f"!{table}"])
    mine = []
    for row in t.rows:
        cells = []
        for (_, value, width), column in zip(row, t.columns, strict=True):
            if column.is_string:
                cells.append(db.string(value) or "")
            else:
                cells.append("" if value == 0 else str(struct.unpack(
                    "<i" if width == 4 else "<h",
                    (value ^ (1 << (8 * width - 1))).to_bytes(width, "little"))[0]))  # fmt: skip
        mine.append(cells)
    assert sorted(mine) == sorted(msi_table(path, table))


def test_string_data_no_pool_entry_covers(msi) -> None:
    _, s = msi
    with pytest.raises(BadTable, match="no pool entry covers"):
        _db(s, data=s["!_StringData"] + b"payload")


def test_pool_lengths_past_the_data(msi) -> None:
    _, s = msi
    with pytest.raises(BadTable, match="run past"):
        _db(s, data=s["!_StringData"][:-1])


def test_pool_not_whole_entries(msi) -> None:
    _, s = msi
    with pytest.raises(BadTable, match="not 4 per entry"):
        _db(s, pool=s["!_StringPool"] + b"\0\0")


def test_table_not_whole_rows(msi) -> None:
    _, s = msi
    with pytest.raises(BadTable, match="not whole rows"):
        _db(s).table("File", s["!File"] + b"\0")


def test_a_column_listed_twice(msi) -> None:
    """_Columns' rows duplicated: every table's columns appear twice."""
    _, s = msi
    raw = s["!_Columns"]
    n = len(raw) // 8  # 2-byte string ids: 8 bytes a row, stored column by column
    cols = [raw[i * 2 * n : (i + 1) * 2 * n] for i in range(4)]
    doubled = b"".join(c + c for c in cols)
    with pytest.raises(BadTable, match="twice"):
        _db(s, columns=doubled)
