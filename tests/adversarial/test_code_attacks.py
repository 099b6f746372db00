"""Attacks on code shown as code (issue 13 item 6): hostile bytes in an executable section must
give a bounded, deterministic disassembly computed in the limited child, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ledger_helpers import FIXTURES, ledger_of
from reprover.compare.code import MAX_DIFFS, MAX_LINE, MAX_LINES, annotate
from reprover.compare.isolation.worker import parse_regions
from reprover.model import Kind

CLI = Callable[..., tuple[int, str, str]]


def _text_section(path: Path) -> tuple[int, int]:
    regions = parse_regions(path)
    assert isinstance(regions, dict)
    start, end, arch, _ = max(regions["code"], key=lambda c: c[1] - c[0])  # .text
    assert arch == "x86-64"
    return start, end


def test_garbage_in_text_gives_bounded_disassembly(run_cli: CLI, tmp_path: Path) -> None:
    """Every other byte of .text replaced by garbage: hundreds of code runs, each shown
    with at most 8 instructions (`.byte` where there is none), at most 50 per file, the rest
    named in a note; the report is the same on every run."""
    src = FIXTURES / "elf-date" / "a"
    start, end = _text_section(src)
    data = bytearray(src.read_bytes())
    for at in range(start, end, 2):
        data[at] ^= 0xA5 ^ (at & 0x5A)  # garbage: every other byte changed, never unchanged
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(bytes(data))
    code, out, _ = run_cli("diff", a, b, "--format", "json")
    assert code == 1
    report = json.loads(out)
    code_diffs = [
        d for art in report["artifacts"] for d in art["differences"] if d["kind"] == "code"
    ]
    assert len(code_diffs) > MAX_DIFFS
    shown = [d["disassembly"] for d in code_diffs if d["disassembly"]]
    assert 0 < len(shown) <= MAX_DIFFS
    for item in shown:
        for side in (item["released"], item["rebuilt"]):
            assert len(side) <= MAX_LINES
            assert all(len(line) <= MAX_LINE for line in side)
    notes = " ".join(report["artifacts"][0]["notes"])
    assert f"disassembly shown for the first {MAX_DIFFS} code differences" in notes
    again = run_cli("diff", a, b, "--format", "json")[1]
    assert again == out


def test_undecodable_bytes_become_byte_lines(run_cli: CLI, tmp_path: Path) -> None:
    """A run of bytes that are no x86 instruction decodes to `.byte` lines, not an error."""
    src = FIXTURES / "elf-date" / "a"
    start, _ = _text_section(src)
    data = bytearray(src.read_bytes())
    data[start : start + 4] = b"\x0f\x0b\x06\x07"  # ud2, then push/pop es: invalid in 64-bit
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(bytes(data))
    code, out, _ = run_cli("diff", a, b, "--format", "text")
    assert code == 1
    assert "ud2" in out
    assert ".byte" in out


def test_failed_decoder_is_a_note(tmp_path: Path) -> None:
    """The child cannot read the rebuilt file (gone after the comparison): every planned
    difference gets a note from the real child, nothing raises."""
    src = FIXTURES / "elf-date" / "a"
    start, _ = _text_section(src)
    data = bytearray(src.read_bytes())
    data[start + 1] ^= 0xFF
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(bytes(data))
    maps = parse_regions(a), parse_regions(b)
    assert isinstance(maps[0], dict) and isinstance(maps[1], dict)
    diffs = ledger_of(a, b).differences
    assert any(d.disassembly and d.disassembly.released for d in diffs)
    b.unlink()
    again, _ = annotate(a, b, tuple(replace(d, disassembly=None) for d in diffs), maps)
    code = [d for d in again if d.kind is Kind.CODE]
    assert code
    for diff in code:
        assert diff.disassembly is not None
        assert diff.disassembly.note is not None
        assert diff.disassembly.note.startswith("not disassembled: parser failed")
        assert not diff.disassembly.released
