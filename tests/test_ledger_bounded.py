"""The bounded ledger (issue 19 item 2): at most N runs listed per region, the rest counted
exactly, said in the notes and in one zero-length row per region; policy judges those rows."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import lief
import pytest

from ledger_helpers import FIXTURES
from reprover.compare import compare_files
from reprover.compare.isolation.worker import parse_regions
from reprover.model import ArtifactResult, ArtifactVerdict, Digest, Kind, Policy
from reprover.policy import RULES, judge


def _compare(a: Path, b: Path, allow: tuple[str, ...], max_runs: int) -> ArtifactResult:
    def dg(p: Path) -> Digest:
        data = p.read_bytes()
        return Digest(hashlib.sha256(data).hexdigest(), len(data))

    return compare_files(
        "x", a, b, Policy(allow=allow), digests=(dg(a), dg(b)), judge=judge, max_runs=max_runs
    )


def _every_other(data: bytes, start: int, end: int) -> bytes:
    out = bytearray(data)
    for i in range(start, end, 2):
        out[i] ^= 0xFF
    return bytes(out)


def _totals(result: ArtifactResult) -> tuple[int, int]:
    """(runs, bytes) listed plus those the summary rows count."""
    runs = nbytes = 0
    for d in result.differences:
        if d.length:
            runs, nbytes = runs + 1, nbytes + d.length
        else:
            words = (d.detail or "").split()
            runs += int(words[0])
            nbytes += int(words[4].strip("("))
    return runs, nbytes


def test_every_other_byte_is_counted_exactly_with_few_rows(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    data = os.urandom(1 << 20)
    a.write_bytes(data)
    b.write_bytes(_every_other(data, 0, len(data)))
    result = _compare(a, b, (), max_runs=50)
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert len(result.differences) == 51
    assert _totals(result) == (1 << 19, 1 << 19)
    assert any(n.startswith("ledger bounded: 524238 more differing runs") for n in result.notes)


def test_summarised_code_is_never_allowed(tmp_path: Path) -> None:
    src = FIXTURES / "elf-date" / "a"
    text = lief.ELF.parse(str(src)).get_section(".text")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(_every_other(src.read_bytes(), text.offset, text.offset + text.size))
    result = _compare(a, b, tuple(RULES), max_runs=10)
    assert result.verdict is ArtifactVerdict.DIFFERENT
    rows = [d for d in result.differences if d.length == 0]
    assert rows and all(d.kind is Kind.CODE and not d.allowed for d in rows)
    assert _totals(result) == ((text.size + 1) // 2, (text.size + 1) // 2)


def test_summarised_debug_info_is_judged_by_its_rule(tmp_path: Path) -> None:
    src = FIXTURES / "pe-mingw-dwarf" / "a"
    regions = parse_regions(src)
    assert isinstance(regions, dict)
    names = {n: (s, e) for s, e, n, _ in regions["regions"]}
    start, end = names["pe.section[.debug_info]"]
    end = names.get("pe.section[.debug_info].padding", (end, end))[0]  # not debug info
    a, b = tmp_path / "a.exe", tmp_path / "b.exe"
    a.write_bytes(src.read_bytes())
    b.write_bytes(_every_other(src.read_bytes(), start, end))
    allowed = _compare(a, b, ("debug-info",), max_runs=5)
    assert allowed.verdict is ArtifactVerdict.EQUIVALENT
    [row] = [d for d in allowed.differences if d.length == 0]
    assert row.allowed and row.rule == "debug-info" and row.region == "pe.section[.debug_info]"
    assert _compare(a, b, ("pe.timestamp",), max_runs=5).verdict is ArtifactVerdict.DIFFERENT


def test_beyond_the_summary_limit_one_row_counts_the_other_regions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprover.compare import ledger_budget

    monkeypatch.setattr(ledger_budget, "MAX_SUMMARIES", 2)
    src = FIXTURES / "elf-date" / "a"
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(src.read_bytes())
    b.write_bytes(_every_other(src.read_bytes(), 0x2000, 0x2200))  # .rodata onwards
    result = _compare(a, b, tuple(RULES), max_runs=1)
    assert result.verdict is ArtifactVerdict.DIFFERENT
    rows = [d for d in result.differences if d.length == 0]
    assert len(rows) == 3
    [overflow] = [d for d in rows if d.region == "file"]
    assert "other regions" in (overflow.detail or "") and not overflow.allowed
    assert _totals(result) == (0x100, 0x100)


def test_diff_max_runs_through_the_cli(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    data = os.urandom(1 << 16)
    a.write_bytes(data)
    b.write_bytes(_every_other(data, 0, len(data)))
    code, out, _ = run_cli("diff", a, b, "--max-runs", "3", "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    assert [d["length"] for d in artifact["differences"]] == [1, 1, 1, 0]
    assert artifact["differences"][-1]["detail"].startswith("32765 more differing runs")
    assert any(n.startswith("ledger bounded:") for n in artifact["notes"])
    assert run_cli("diff", a, b, "--max-runs", "0")[0] == 2
