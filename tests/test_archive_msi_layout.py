"""A signed MSI's compound-file layout is the one osslsigncode writes (`msilayout`, issue 15).

Real osslsigncode output only: a Windows-made MSI (a real red-black directory tree, whose
reading order is not the sorted one) signed, then a second signature nested into it (the
second pass reads the file osslsigncode wrote, in its own order); a large MSI osslsigncode
writes anew with 4096-byte sectors (version 4); the port against the writer's output for
every fixture kind. Attacks on the layout: `tests/adversarial/test_msi_layout_attacks.py`.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, osslsigncode_verifies, report, sign_msi, write_msi
from reprover.compare.archives.msilayout import require_signer_layout
from reprover.compare.archives.msiwriter import read_input

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
REAL = FIXTURES / "real-msi" / "wix-shortcuts.msi"
CAS = ("--trusted", FIXTURES / "signature" / "ca.pem",
       "--trusted", FIXTURES / "signature" / "other-ca.pem")  # fmt: skip


def _in(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "setup.msi"


@pytest.mark.parametrize("dse", [False, True], ids=["plain", "extended"])
def test_nested_signature_on_a_windows_made_msi_is_signature_only(
    tmp_path: Path, run_cli, dse: bool
) -> None:
    """`-nest` rewrites the file osslsigncode wrote, whose tree is its sorted list, not the
    Windows-made rebuild's red-black tree: the second pass's order is osslsigncode's own."""
    rebuilt = _in(tmp_path / "rebuilt")
    shutil.copyfile(REAL, rebuilt)
    once = sign_msi(rebuilt, _in(tmp_path / "once"), dse=dse)
    nested = sign_msi(once, _in(tmp_path / "nested"), signer="other-leaf", dse=dse, nest=True)
    assert osslsigncode_verifies(nested)
    for released in (once, nested):
        code, rep = report(run_cli, "sign-check", rebuilt, released, *CAS)
        assert code == 0, rep
        assert artifact(rep, "setup.msi")["verdict"] == "signature-only"


def test_large_msi_is_written_as_version_4_and_is_signature_only(tmp_path: Path, run_cli) -> None:
    """Over 7,143,936 bytes with its signature, osslsigncode writes 4096-byte sectors (header
    version 4, a directory sector count); the layout check follows its rule."""
    rng = random.Random(4)  # noqa: S311 - incompressible test data, not secrets
    rebuilt = write_msi(_in(tmp_path / "rebuilt"), rng.randbytes(7_200_000))
    assert rebuilt.stat().st_size > 7_143_936
    assert read_input(rebuilt).sector == 512
    released = sign_msi(rebuilt, _in(tmp_path / "released"))
    assert read_input(released).sector == 4096
    assert released.read_bytes()[0x1A:0x1C] == b"\x04\x00"
    require_signer_layout(released, rebuilt)
    code, rep = report(run_cli, "sign-check", rebuilt, released, *CAS)
    assert code == 0, rep
    assert artifact(rep, "setup.msi")["verdict"] == "signature-only"


def test_the_port_matches_osslsigncode_signing_a_wixl_msi(tmp_path: Path) -> None:
    """Plain, extended and nested signatures of one wixl MSI: each is the port's file."""
    rng = random.Random(5)  # noqa: S311 - incompressible test data, not secrets
    rebuilt = write_msi(_in(tmp_path / "rebuilt"), rng.randbytes(40_000),
                        helper=rng.randbytes(9_000))  # fmt: skip
    plain = sign_msi(rebuilt, _in(tmp_path / "plain"))
    extended = sign_msi(rebuilt, _in(tmp_path / "extended"), dse=True)
    nested = sign_msi(extended, _in(tmp_path / "nested"), dse=True, nest=True)
    for released in (plain, extended, nested):
        require_signer_layout(released, rebuilt)


def _tables_match(released: Path, rebuilt: Path, *, extended: bool) -> bool:
    """The port's header sector, directory, MiniFAT, FAT and DIFAT, and length, against a
    file osslsigncode wrote that no reader parses (the tables read from the raw bytes)."""
    import struct

    from reprover.compare.archives import msiwriter

    data, reb = released.read_bytes(), msiwriter.read_input(rebuilt)
    sizes = dict(reb.sizes)
    directory = data[(struct.unpack_from("<I", data, 0x30)[0] + 1) * 512 :]
    for sid in range(len(directory) // 128):
        raw = directory[sid * 128 : (sid + 1) * 128]
        name = raw[: struct.unpack_from("<H", raw, 0x40)[0]]
        if name in (msiwriter.SIGNATURE, msiwriter.EXTENDED):
            sizes[(name,)] = struct.unpack_from("<I", raw, 0x78)[0]
    plan = msiwriter.write(msiwriter.signature_insert(reb.tree, extended), sizes, 512, reb.header)
    parts = ((0, plan.header), (plan.offset(plan.minifat_at), plan.minifat),
             (plan.offset(plan.dir_at), plan.directory),
             (plan.offset(plan.fat_at), plan.fat + plan.difat))  # fmt: skip
    return len(data) == plan.length and all(data[at : at + len(t)] == t for at, t in parts)


@pytest.mark.skipif(shutil.which("gsf") is None, reason="gsf (libgsf-bin): .ci/apt-packages.txt")
@pytest.mark.parametrize("dse", [False, True], ids=["plain", "extended"])
def test_the_port_writes_nested_storages_as_osslsigncode_does(tmp_path: Path, dse: bool) -> None:
    """osslsigncode 2.9 links a storage's next sibling past its own children's count only,
    a tree it cannot read back (nor can olefile, nor Windows): the port writes the same
    bytes, so it is the writer, quirks included (the proof then fails on the tree)."""
    from archive_support import repack_msi

    unsigned = write_msi(_in(tmp_path / "unsigned"), b"MZ" + bytes(5000))
    tree = {"OuterStorageXYZ": {"inner": b"one\n", "NestedLast": {"x": b"deep\n"}},
            "Zed": {"a": b"1", "B": {"c": b"2" * 5000}}}  # fmt: skip
    base = repack_msi(unsigned, tmp_path / "base.msi", tree)
    broken = sign_msi(base, _in(tmp_path / "broken"), dse=dse)
    assert not osslsigncode_verifies(broken)
    assert _tables_match(broken, base, extended=dse)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gsf") is None, reason="gsf (libgsf-bin): .ci/apt-packages.txt")
def test_a_file_past_109_fat_sectors_has_the_writers_difat(tmp_path: Path) -> None:
    """Over 109 FAT sectors (about 436 MiB with 4096-byte sectors) osslsigncode writes a
    DIFAT after the FAT: a 460 MB stream of zeros (sparse on disk where the filesystem
    allows) in a libgsf compound file, signed."""
    import subprocess

    payload, rebuilt = tmp_path / "payload", _in(tmp_path / "rebuilt")
    try:
        with payload.open("wb") as f:
            f.truncate(460_000_000)
        (tmp_path / "small").write_bytes(b"hi\n")
        subprocess.run(["gsf", "createole", str(rebuilt), "payload", "small"], cwd=tmp_path,
                       check=True, capture_output=True)  # fmt: skip
        payload.unlink()
        released = sign_msi(rebuilt, _in(tmp_path / "released"))
        with released.open("rb") as f:
            head = f.read(512)
        assert head[0x1A] == 4 and int.from_bytes(head[0x48:0x4C], "little") >= 1  # a DIFAT
        require_signer_layout(released, rebuilt)
    finally:
        for big in tmp_path.rglob("*.msi"):
            big.unlink()
        payload.unlink(missing_ok=True)
