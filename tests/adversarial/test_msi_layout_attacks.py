"""Attacks on a signed MSI's compound-file layout (issue 15, `msilayout`).

The MSI signature hashes stream contents, not where they lie: each attack below keeps every
stream byte for byte the signed one's, so `osslsigncode verify` still succeeds, and changes
only the layout (sector order, a free sector, the directory's shape, the version) to carry
chosen bits. Each runs `reprover sign-check` (the real CLI) on a wixl MSI signed by
osslsigncode and must be refused, the report naming the first difference from the file
osslsigncode writes. The sector interleaving itself: `test_redteam2_attacks`.
"""

from __future__ import annotations

import itertools
import random
import shutil
import struct
from pathlib import Path

import olefile
import pytest

from archive_support import osslsigncode_verifies, report, sign_msi, write_msi
from reprover.compare.archives import msilayout, msiwriter

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
REFUSED = "not laid out as osslsigncode writes it"


@pytest.fixture(scope="module")
def msis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(rebuilt, signed): a wixl MSI with two 40 KB streams, and osslsigncode's signature."""
    root = tmp_path_factory.mktemp("layout")
    rng = random.Random(7)  # noqa: S311 - incompressible test data, not secrets
    (root / "rebuilt").mkdir()
    rebuilt = write_msi(root / "rebuilt" / "setup.msi", rng.randbytes(40_000),
                        helper=rng.randbytes(40_000))  # fmt: skip
    return rebuilt, sign_msi(rebuilt, root / "signed.msi")


def u32(data: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<I", data, at)[0])


def entry_at(data: bytes | bytearray, sid: int) -> int:
    """Directory entry `sid`'s offset (osslsigncode writes the directory contiguous)."""
    return (u32(data, 0x30) + 1) * 512 + sid * 128


def fat_at(data: bytes | bytearray, sector: int) -> int:
    """The offset of `sector`'s FAT entry (FAT sectors listed in the header)."""
    return (u32(data, 0x4C + 4 * (sector // 128)) + 1) * 512 + 4 * (sector % 128)


def streams(data: bytes | bytearray, *, large: bool) -> list[tuple[int, int, int]]:
    """(start, size, sid) of the root's streams, large (whole sectors) or small, by start."""
    out = []
    for sid in range(1, 4 * (u32(data, 0x4C) - u32(data, 0x30))):  # the directory: up to the FAT
        at = entry_at(data, sid)
        if data[at + 0x42] == 2 and (u32(data, at + 0x78) >= 4096) == large:
            out.append((u32(data, at + 0x74), u32(data, at + 0x78), sid))
    return sorted(out)


def release(tmp_path: Path, data: bytes | bytearray) -> Path:
    (tmp_path / "rel").mkdir()
    path = tmp_path / "rel" / "setup.msi"
    path.write_bytes(bytes(data))
    return path


def refused(run_cli, rebuilt: Path, released: Path) -> str:
    """`sign-check` exits 1; the check's detail (the refusal)."""
    assert osslsigncode_verifies(released)  # the signature still holds: a real channel
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 1, rep
    detail = str(rep["checks"][0]["detail"])
    assert REFUSED in detail, detail
    return detail


def swap(data: bytearray, a: tuple[int, int, int], b: tuple[int, int, int], *, unit: int,
         base: int, table: int) -> None:  # fmt: skip
    """Put stream `b` (start, size, sid; `unit`-byte sectors at `base`) where `a` begins
    and `a` right after it: both chains contiguous, the table (at `table`) relinked."""
    count = [-(-s // unit) for s in (a[1], b[1])]
    start = a[0]
    blob = [
        data[base + (x[0] * unit) : base + (x[0] + n) * unit]
        for x, n in zip((a, b), count, strict=True)
    ]
    data[base + start * unit : base + (start + sum(count)) * unit] = blob[1] + blob[0]
    for (first, n), (_, _, sid) in zip(
        ((start, count[1]), (start + count[1], count[0])), (b, a), strict=True
    ):
        for i in range(n):
            struct.pack_into("<I", data, table + 4 * (first + i),
                             first + i + 1 if i + 1 < n else 0xFFFFFFFE)  # fmt: skip
        struct.pack_into("<I", data, entry_at(data, sid) + 0x74, first)


def test_two_large_streams_placed_in_the_other_order(msis, run_cli, tmp_path) -> None:
    """Each chain still contiguous and ascending, the two streams' order swapped (one bit per
    pair; n! orders for n streams): the entries' start sectors are not the writer's."""
    rebuilt, signed = msis
    data = bytearray(signed.read_bytes())
    a, b = streams(data, large=True)[:2]
    assert b[0] == a[0] + -(-a[1] // 512)  # adjacent, as osslsigncode writes them
    swap(
        data, a, b, unit=512, base=512, table=fat_at(data, 0)
    )  # osslsigncode writes the FAT contiguous
    detail = refused(run_cli, rebuilt, release(tmp_path, data))
    assert "start sector" in detail


def test_two_small_streams_placed_in_the_other_order(msis, run_cli, tmp_path) -> None:
    """The same inside the mini stream: two small streams' mini sectors swapped."""
    rebuilt, signed = msis
    data = bytearray(signed.read_bytes())
    small = streams(data, large=False)
    a, b = next((x, y) for x, y in itertools.pairwise(small) if y[0] == x[0] + -(-x[1] // 64))
    root = entry_at(data, 0)
    mini = (u32(data, root + 0x74) + 1) * 512
    swap(data, a, b, unit=64, base=mini, table=(u32(data, 0x3C) + 1) * 512)
    detail = refused(run_cli, rebuilt, release(tmp_path, data))
    assert "start sector" in detail


def test_a_free_sector_added(msis, run_cli, tmp_path) -> None:
    """A zeroed free sector after the last (its FAT entry already FREESECT): the length."""
    rebuilt, signed = msis
    data = signed.read_bytes()
    assert u32(data, fat_at(data, len(data) // 512 - 1)) == 0xFFFFFFFF
    detail = refused(run_cli, rebuilt, release(tmp_path, data + bytes(512)))
    assert f"the file is {len(data) + 512} bytes, osslsigncode writes {len(data)}" in detail


def test_two_sibling_entries_swapped_in_the_directory(msis, run_cli, tmp_path) -> None:
    """Directory entries 1 and 2 (root streams) trade places, links kept: the same tree of
    names read in another order. The writer sorts siblings by name length, then code unit."""
    rebuilt, signed = msis
    data = bytearray(signed.read_bytes())
    one, two = entry_at(data, 1), entry_at(data, 2)
    a, b = bytearray(data[one : one + 128]), bytearray(data[two : two + 128])
    a[0x44:0x50], b[0x44:0x50] = b[0x44:0x50], a[0x44:0x50]
    data[one : one + 128], data[two : two + 128] = b, a
    detail = refused(run_cli, rebuilt, release(tmp_path, data))
    assert "directory entry 1" in detail and "name" in detail


def test_a_red_entry(msis, run_cli, tmp_path) -> None:
    """One entry's colour flag red (every entry is black in what the writer writes)."""
    rebuilt, signed = msis
    data = bytearray(signed.read_bytes())
    data[entry_at(data, 1) + 0x43] = 0
    detail = refused(run_cli, rebuilt, release(tmp_path, data))
    assert "directory entry 1" in detail and "colour" in detail


def lay_out(signed: Path, rebuilt: Path, sector: int) -> bytes:
    """`signed` written anew by the port with `sector`-byte sectors: the writer's own file
    (512) or the same with the other version (4096)."""
    rel, reb = msiwriter.read_input(signed), msiwriter.read_input(rebuilt)
    tree = msiwriter.signature_insert(msilayout.released_tree(reb.tree, rel.raws), True)
    tree.kids = [k for k in tree.kids if k.key != (msiwriter.EXTENDED,)]
    plan = msiwriter.write(tree, rel.sizes, sector, reb.header)
    out = bytearray(plan.length)
    out[:sector] = plan.header
    with olefile.OleFileIO(str(signed)) as ole:

        def read(key: tuple[bytes, ...]) -> bytes:
            return bytes(ole.openstream([n[:-2].decode("utf-16-le") for n in key]).read())

        for at, size, key in plan.large:
            out[plan.offset(at) : plan.offset(at) + size] = read(key)
        mini = plan.offset(plan.mini_at)
        for at, size, key in plan.small:
            out[mini + at : mini + at + size] = read(key)
    for at, table in ((plan.minifat_at, plan.minifat), (plan.dir_at, plan.directory),
                      (plan.fat_at, plan.fat + plan.difat)):  # fmt: skip
        out[plan.offset(at) : plan.offset(at) + len(table)] = table
    return bytes(out)


def test_a_small_msi_written_with_4096_byte_sectors(msis, run_cli, tmp_path) -> None:
    """The writer's layout, but version 4: osslsigncode writes 4096-byte sectors only past
    7,143,936 bytes, so the version is one more bit unless its rule is followed."""
    rebuilt, signed = msis
    assert lay_out(signed, rebuilt, 512) == signed.read_bytes()  # the port is the writer
    detail = refused(run_cli, rebuilt, release(tmp_path, lay_out(signed, rebuilt, 4096)))
    assert "writes 512-byte sectors, the file has 4096-byte ones" in detail
