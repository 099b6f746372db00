"""Issue 13 item 6: every `code` difference shows the changed instructions, before and after,
in the text, JSON, Markdown and HTML reports of `reprover diff` (decoded with capstone in the
isolated child)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger_helpers import ledger_of

YEAR_C = '#include <stdio.h>\nint main(void) { printf("Copyright %d\\n", YEAR); return 0; }\n'
CLI = Callable[..., tuple[int, str, str]]


def _pair(tmp: Path, compiler: str, suffix: str = "") -> tuple[Path, Path]:
    """The same program built twice, only the year in code differs (2022 -> 2026)."""
    out = []
    for year in (2022, 2026):
        work = tmp / str(year)
        work.mkdir()
        (work / "hello.c").write_text(YEAR_C)
        binary = work / f"hello{suffix}"
        subprocess.run(
            [compiler, "-O2", f"-DYEAR={year}", "-o", binary.name, "hello.c"],
            cwd=work,
            check=True,
        )
        out.append(binary)
    return out[0], out[1]


def _code_diffs(report: dict[str, object]) -> list[dict[str, object]]:
    artifacts = report["artifacts"]
    assert isinstance(artifacts, list)
    return [d for a in artifacts for d in a["differences"] if d["kind"] == "code"]


def _check_all_formats(run_cli: CLI, a: Path, b: Path, old: str, new: str) -> None:
    code, out, _ = run_cli("diff", a, b, "--format", "json")
    assert code == 1
    diffs = _code_diffs(json.loads(out))
    assert diffs, "the year is a code difference"
    shown = [d["disassembly"] for d in diffs if d["disassembly"]]
    assert any(old in " ".join(x["released"]) and new in " ".join(x["rebuilt"]) for x in shown)
    for fmt in ("text", "markdown", "html"):
        code, out, _ = run_cli("diff", a, b, "--format", fmt)
        assert code == 1
        assert old in out and new in out, fmt


@pytest.mark.slow
def test_gcc_year_constant_is_shown_as_instructions(run_cli: CLI, tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "gcc")
    _check_all_formats(run_cli, a, b, ", 0x7e6", ", 0x7ea")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("x86_64-w64-mingw32-gcc") is None, reason="needs mingw-w64")
def test_mingw_pe_year_constant_is_shown_as_instructions(run_cli: CLI, tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "x86_64-w64-mingw32-gcc", ".exe")
    _check_all_formats(run_cli, a, b, ", 0x7e6", ", 0x7ea")


def test_non_code_difference_has_no_disassembly(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "gcc")
    ledger = ledger_of(a, b)
    assert any(d.disassembly for d in ledger.differences if d.kind.value == "code")
    assert all(d.disassembly is None for d in ledger.differences if d.kind.value != "code")


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")
@pytest.mark.parametrize(
    ("target", "old", "new"),
    [
        ("aarch64-linux-gnu", "mov w0, #0x7e6", "mov w0, #0x7ea"),
        ("arm64-apple-macos11", "mov w0, #0x7e6", "mov w0, #0x7ea"),
        ("i686-linux-gnu", "mov eax, 0x7e6", "mov eax, 0x7ea"),
        ("armv7-linux-gnueabihf", "movw r0, #0x7e6", "movw r0, #0x7ea"),
    ],
)
def test_other_instruction_sets(tmp_path: Path, target: str, old: str, new: str) -> None:
    """ELF arm64, Mach-O arm64, ELF x86 and ELF 32-bit ARM objects from clang."""
    objects = []
    for year in (2022, 2026):
        (tmp_path / "y.c").write_text("int year(void) { return YEAR; }\n")
        out = tmp_path / f"y{year}.o"
        subprocess.run(
            ["clang", f"--target={target}", "-O2", f"-DYEAR={year}", "-c", "y.c", "-o", out.name],
            cwd=tmp_path,
            check=True,
        )
        objects.append(out)
    shown = [d.disassembly for d in ledger_of(*objects).differences if d.disassembly]
    assert [(x.released, x.rebuilt) for x in shown] == [((f"0x0: {old}",), (f"0x0: {new}",))]


def test_moved_layout_uses_the_aligned_offsets(tmp_path: Path) -> None:
    """Files of different sizes (a 9 KB table in .rodata): the rebuilt side is read where the
    structure alignment puts it, so the year shows as the changed instruction."""
    src = '#include <stdio.h>\nstatic const char big[SIZE] = "x";\nint main(int c, char **v) '
    src += '{ printf("Copyright %d %c\\n", YEAR, big[c]); return 0; }\n'
    binaries = []
    for year, size in ((2022, 10), (2026, 9000)):
        work = tmp_path / str(year)
        work.mkdir()
        (work / "h.c").write_text(src)
        subprocess.run(
            ["gcc", "-O2", f"-DYEAR={year}", f"-DSIZE={size}", "-o", "h", "h.c"],
            cwd=work,
            check=True,
        )
        binaries.append(work / "h")
    assert binaries[0].stat().st_size != binaries[1].stat().st_size
    shown = [d.disassembly for d in ledger_of(*binaries).differences if d.disassembly]
    pairs = [(" ".join(x.released), " ".join(x.rebuilt)) for x in shown]
    assert any("mov esi, 0x7e6" in old and "mov esi, 0x7ea" in new for old, new in pairs)
