"""Real runs of `reprover verify` with several reports at once (`--report FORMAT=PATH`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]


def test_tampered_release_writes_every_report(project: Project, run_cli: Cli) -> None:
    binary = project.release / "hello"
    data = bytearray(binary.read_bytes())
    banner = data.index(b"hello from the engine")
    data[banner] ^= 0x20  # 'h' -> 'H' in .rodata, after the vendor's build
    binary.write_bytes(bytes(data))
    out = project.root / "reports"
    out.mkdir()
    code, stdout, _ = run_cli(
        "verify",
        project.manifest(),
        "--format", "html",
        "-o", out / "report.html",
        "--report", f"junit={out / 'junit.xml'}",
        "--report", f"markdown={out / 'summary.md'}",
        "--report", f"json={out / 'report.json'}",
        "--quiet",
    )  # fmt: skip
    assert code == 1
    assert stdout == ""
    page = (out / "report.html").read_text()
    assert '<svg class="bytemap"' in page and "reprover: FAIL" in page
    report = json.loads((out / "report.json").read_text())
    run = next(d for d in report["artifacts"][0]["differences"] if d["offset"] <= banner)
    assert run["offset"] <= banner < run["offset"] + run["length"]
    assert f"0x{run['offset']:08x}" in page
    root = ET.fromstring((out / "junit.xml").read_bytes())  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures")) == ("1", "1")
    summary = (out / "summary.md").read_text()
    assert "| `hello` | \u274c different |" in summary
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml", "report.html", "report.json", "summary.md"
    ]  # fmt: skip


def test_identical_release_with_report_next_to_stdout(project: Project, run_cli: Cli) -> None:
    junit = project.root / "junit.xml"
    code, stdout, stderr = run_cli("verify", project.manifest(), "--report", f"junit={junit}")
    assert code == 0, stderr
    assert stdout.startswith("verdict: PASS")
    root = ET.fromstring(junit.read_bytes())  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    assert stderr.rstrip().endswith("reprover: pass")


def test_bad_report_options_are_bad_input(project: Project, run_cli: Cli, tmp_path: Path) -> None:
    manifest = project.manifest()
    for value in ("junit", "pdf=x.pdf", "html="):
        code, _, stderr = run_cli("verify", manifest, "--report", value)
        assert code == 2, value
        assert "--report" in stderr
    same = tmp_path / "same.xml"
    code, _, stderr = run_cli(
        "diff", project.release, project.release, "-o", same, "--report", f"junit={same}"
    )
    assert code == 2
    assert "would both be written" in stderr
    assert not same.exists()
