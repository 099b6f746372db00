"""Issue 13 item 5, the ledger's parts: symbols bounded by the function's real extent (ELF
st_size, PE .pdata, Mach-O LC_FUNCTION_STARTS) or no symbol; `.gnu_debuglink` covered by
`debug-info`; ELF dynamic tags by name."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger_helpers import FIXTURES, ledger_of
from reprover.compare import compare_files
from reprover.compare.isolation.worker import parse_regions
from reprover.model import ArtifactVerdict, Digest, Policy
from reprover.policy import judge

C = "int licensed(void) { volatile int x = 0; return x; }\nint main(void) { return licensed(); }\n"


def _flipped(tmp: Path, src: Path, *offsets: int) -> tuple[Path, Path]:
    data = bytearray(src.read_bytes())
    for at in offsets:
        data[at] ^= 1
    a, b = tmp / "a", tmp / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(bytes(data))
    return a, b


def _symbols_at(path: Path, name: str) -> tuple[int, int]:
    regions = parse_regions(path)
    assert isinstance(regions, dict)
    return max(((s, e) for s, e, n in regions["symbols"] if n == name), key=lambda r: r[1] - r[0])


def _check_extent(tmp: Path, binary: Path, name: str) -> None:
    start, end = _symbols_at(binary, name)
    assert end > start, f"{name} has a real extent"
    a, b = _flipped(tmp, binary, start + 2, end - 1, end + 1)
    found = {d.offset: d.symbol for d in ledger_of(a, b).differences}
    assert found[start + 2] == f"{name}+0x2"
    assert found[end - 1] == f"{name}+0x{end - 1 - start:x}"
    assert found[end + 1] is None or not found[end + 1].startswith(name)


def test_elf_symbol_is_bounded_by_its_size(tmp_path: Path) -> None:
    _check_extent(tmp_path, FIXTURES / "elf-date" / "a", "main")


def test_macho_symbol_is_bounded_by_function_starts(tmp_path: Path) -> None:
    _check_extent(tmp_path, FIXTURES / "macho-thin" / "a", "_start")


@pytest.mark.skipif(shutil.which("x86_64-w64-mingw32-gcc") is None, reason="needs mingw-w64")
def test_pe_symbol_is_bounded_by_pdata(tmp_path: Path) -> None:
    (tmp_path / "f.c").write_text(C)
    exe = tmp_path / "f.exe"
    subprocess.run(
        ["x86_64-w64-mingw32-gcc", "-O2", "-fno-inline", "-o", str(exe), "f.c"],
        cwd=tmp_path,
        check=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    _check_extent(work, exe, "licensed")


def test_a_symbol_without_extent_names_only_its_first_byte(tmp_path: Path) -> None:
    """The Mach-O __eh_frame bytes once read `_start+0x1070`: now no symbol at all."""
    diffs = ledger_of(FIXTURES / "macho-thin" / "a", FIXTURES / "macho-thin" / "b").differences
    assert all(d.symbol is None for d in diffs if "__eh_frame" in d.region)


def test_gnu_debuglink_is_debug_info(tmp_path: Path) -> None:
    (tmp_path / "f.c").write_text(C)
    subprocess.run(["gcc", "-O2", "-o", "f", "f.c"], cwd=tmp_path, check=True)
    out = []
    for tag in (b"one", b"two"):
        (tmp_path / "f.debug").write_bytes(tag * 100)
        linked = tmp_path / f"f-{tag.decode()}"
        subprocess.run(
            ["objcopy", "--add-gnu-debuglink=f.debug", "f", linked.name], cwd=tmp_path, check=True
        )
        out.append(linked)

    def dg(p: Path) -> Digest:
        data = p.read_bytes()
        return Digest(hashlib.sha256(data).hexdigest(), len(data))

    a, b = out
    digests = (dg(a), dg(b))
    allowed = compare_files("f", a, b, Policy(allow=("debug-info",)), digests=digests, judge=judge)
    assert allowed.verdict is ArtifactVerdict.EQUIVALENT
    assert {d.region for d in allowed.differences} == {"elf.section[.gnu_debuglink]"}
    strict = compare_files("f", a, b, Policy(allow=("elf.build-id",)), digests=digests, judge=judge)
    assert strict.verdict is ArtifactVerdict.DIFFERENT


def test_dynamic_tags_are_named() -> None:
    for path in (FIXTURES / "elf-date" / "a", Path("/usr/bin/ls")):
        if not path.exists():
            continue
        regions = parse_regions(path)
        assert isinstance(regions, dict)
        names = {n for _, _, n, _ in regions["regions"] if n.startswith("elf.dynamic.")}
        assert names and not [n for n in names if n.startswith("elf.dynamic.DT_0x")], names
