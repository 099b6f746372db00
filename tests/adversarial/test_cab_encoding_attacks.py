"""Attacks on the gcab block check (`compare/archives/cabzip.py`, issue 15).

The released cabinet holds the signed DLL, the rebuild the unsigned one, so the compressed
blocks must differ; they pass only when each is exactly what gcab makes of its content. Each
attack keeps the cabinet valid (every block inflates to the same files, checksums right) and
changes only the encoder's free choices, which could carry data. Run through the real CLI
with every rule allowed but `archive.compression`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    mszip_blocks,
    reblock_cab,
    regions,
    report,
    write_cab,
)
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    shutil.which("gcab") is None or shutil.which("osslsigncode") is None,
    reason="gcab and osslsigncode are installed by .ci/apt-packages.txt",
)
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
RULES = ("--allow", "signature", "--allow", "archive.mtime", "--allow", "archive.order",
         "--allow", "archive.owner", "--allow", "archive.mode")  # fmt: skip


@pytest.fixture(scope="module")
def cabs(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """(gcab's cabinet of the signed DLL, gcab's cabinet of the unsigned rebuild)."""
    root = tmp_path_factory.mktemp("cabs")
    osslsign(DLL, root / "engine.dll", "leaf")
    released = write_cab(root / "rel" / "x.cab", {"engine.dll": (root / "engine.dll").read_bytes()})
    rebuilt = write_cab(root / "reb" / "x.cab", {"engine.dll": DLL.read_bytes()})
    return released.read_bytes(), rebuilt


def refused(run_cli, tmp_path: Path, released: bytes, rebuilt: Path, *why: str) -> None:
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "x.cab").write_bytes(released)
    code, rep = report(run_cli, "diff", tmp_path / "rel" / "x.cab", rebuilt, *RULES)
    assert code == 1, rep
    outer = artifact(rep, "x.cab")
    assert artifact(rep, "x.cab!engine.dll")["verdict"] == "signature-only"  # content is fine
    encoding = regions(outer)["cab.compression.encoding"]
    assert not encoding["allowed"]
    assert all(w in encoding["detail"] for w in why), encoding["detail"]
    code, _ = report(run_cli, "diff", tmp_path / "rel" / "x.cab", rebuilt, *RULES, "--allow",
                     "archive.compression")  # fmt: skip
    assert code == 0  # only the encoding was wrong


@pytest.mark.parametrize(
    ("variant", "why"),
    [
        ({"level": 9}, "block 0 is not what gcab writes for its content"),
        ({"flush": True}, "block 0 is not what gcab writes for its content"),
        ({"cut": 16384}, "block 0 holds 16384 bytes but is not the last"),
        ({"chained": True}, "block 1 is not one MSZIP stream of its own"),
    ],
    ids=["other-level", "empty-stored-block", "other-cut", "window-carried"],
)
def test_released_blocks_not_gcabs_are_refused(cabs, tmp_path, run_cli, variant, why) -> None:
    """Valid MSZIP of the same content, by other choices: another level, an empty stored
    block in each block (a sync flush: bits that inflate to nothing), 16 KiB blocks, or the
    window carried from block to block (Microsoft's MSZIP)."""
    released, rebuilt = cabs
    forged = reblock_cab(released, lambda content: mszip_blocks(content, **variant))
    assert forged != released
    refused(run_cli, tmp_path, forged, rebuilt, "the released cabinet's folder 0 is not what "
            "gcab's MSZIP encoder", why)  # fmt: skip


def test_rebuild_not_made_by_gcab_fails_closed(cabs, tmp_path, run_cli) -> None:
    """Both cabinets by another encoder (level 9): the rebuild is not reproduced, so the
    released encoding cannot be checked; only `archive.compression` allows it."""
    released, rebuilt = cabs
    other = tmp_path / "reb" / "x.cab"
    other.parent.mkdir()
    other.write_bytes(reblock_cab(rebuilt.read_bytes(), lambda c: mszip_blocks(c, level=9)))
    forged = reblock_cab(released, lambda c: mszip_blocks(c, level=9))
    refused(run_cli, tmp_path, forged, other, "the rebuilt cabinet's folder 0 is not what gcab "
            "makes of its content")  # fmt: skip
