"""Attacks on an MSI's File and MsiFileHash tables restating engine.dll of its product.cab.

The honest pair (tests/test_archive_restated.py): the released MSI holds engine.dll signed by
osslsigncode, its tables as wixl writes them, and is itself signed; the rebuild is unsigned.
Each attack changes one table cell of the released MSI with msibuild (msitools) before it is
signed, so the MSI signature covers the forgery. `diff --allow signature` must exit 1 with the
table stream `different` and a note saying why.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from archive_support import artifact, flip_code_byte, report
from restated_support import MSI_DLL, build_msis, sign

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("msibuild") is None,
    reason="wixl and msitools are in .ci/apt-packages.txt",
)
KEYS = {"File": "File", "MsiFileHash": "File_"}


def _update(table: str, column: str, value: int) -> str:
    """An msibuild query setting one cell of engine.dll's row (values are ints we chose)."""
    return f"UPDATE {table} SET {column}={value} WHERE {KEYS[table]}='engine.dll'"  # noqa: S608


def _run(run_cli, tmp_path: Path, query: str | None, *, dll: bytes | None = None) -> Any:
    signed = sign(MSI_DLL.read_bytes(), tmp_path) if dll is None else dll
    released, rebuilt = build_msis(tmp_path, signed, query)
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert code == 1
    assert artifact(rep, "setup.msi")["verdict"] == "different"
    return rep


def _fails(rep: Any, stream: str, why: str) -> None:
    table = artifact(rep, f"setup.msi!%21{stream}")
    assert table["verdict"] == "different"
    notes = " ".join(table["notes"])
    assert "restated digests not explained" in notes
    assert why in notes, notes


def _md5_parts(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<4i", hashlib.md5(data).digest())  # noqa: S324 - MSI's


def test_file_size_that_is_not_the_released_size(tmp_path: Path, run_cli) -> None:
    size = len(sign(MSI_DLL.read_bytes(), tmp_path / "probe"))
    rep = _run(run_cli, tmp_path, _update("File", "FileSize", size + 1))
    _fails(rep, "File", "FileSize is not the released content's value")


def test_another_file_column_changed(tmp_path: Path, run_cli) -> None:
    """The restated size is right; the row's Attributes change beside it."""
    rep = _run(run_cli, tmp_path, _update("File", "Attributes", 0))
    _fails(rep, "File", "File[engine.dll].Attributes differs but the member's content")


def test_file_hash_that_is_not_the_released_md5(tmp_path: Path, run_cli) -> None:
    parts = _md5_parts(sign(MSI_DLL.read_bytes(), tmp_path / "probe"))
    rep = _run(run_cli, tmp_path, _update("MsiFileHash", "HashPart4", parts[3] ^ 1))
    _fails(rep, "MsiFileHash", "HashPart4 is not the released content's value")


def test_file_hash_part_kept_stale(tmp_path: Path, run_cli) -> None:
    """HashPart1 keeps the unsigned DLL's value; the other three are the signed one's."""
    stale = _md5_parts(MSI_DLL.read_bytes())[0]
    rep = _run(run_cli, tmp_path, _update("MsiFileHash", "HashPart1", stale))
    _fails(rep, "MsiFileHash", "HashPart1 is not the released content's value (stale)")


def test_file_hash_options_changed(tmp_path: Path, run_cli) -> None:
    rep = _run(run_cli, tmp_path, _update("MsiFileHash", "Options", 1))
    _fails(rep, "MsiFileHash", "Options is not the released content's value")


def test_tables_restating_a_dll_that_is_not_accepted(tmp_path: Path, run_cli) -> None:
    """A code byte of the DLL changed before signing; the tables restate it honestly."""
    (tmp_path / "probe").mkdir()
    flipped = flip_code_byte(MSI_DLL.read_bytes())
    rep = _run(run_cli, tmp_path, None, dll=sign(flipped, tmp_path / "probe"))
    _fails(rep, "File", "is different: not accepted")
    _fails(rep, "MsiFileHash", "is different: not accepted")
