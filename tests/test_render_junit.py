"""JUnit XML: the testsuites/testsuite/testcase structure CI systems read, with true counts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

import render_samples as samples
from reprover.model import Report
from reprover.render import render


def parse(report: Report) -> ET.Element:
    data = render(report, "junit")
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(data)  # noqa: S314 - our own output


def check_structure(root: ET.Element) -> None:
    """The JUnit schema's shape: counts on every suite agree with its test cases."""
    assert root.tag == "testsuites"
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for suite in root:
        assert suite.tag == "testsuite" and suite.get("name")
        cases = list(suite)
        assert all(c.tag == "testcase" and c.get("name") and c.get("classname") for c in cases)
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
        }
        for key, value in counts.items():
            assert suite.get(key) == str(value), (suite.get("name"), key)
            totals[key] += value
        for case in cases:
            for child in case:
                assert child.tag in {"failure", "error", "skipped", "system-out", "system-err"}
                if child.tag in {"failure", "error"}:
                    assert child.get("message") and child.get("type")
    for key, value in totals.items():
        assert root.get(key) == str(value), key


@pytest.mark.parametrize("name", sorted(samples.EVERY))
def test_structure_is_valid(name: str) -> None:
    check_structure(parse(samples.EVERY[name]()))


def test_one_case_per_artifact_and_check_with_reasons() -> None:
    root = parse(samples.tampered())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "2", "0")
    artifacts, checks = root.findall("testsuite")
    assert [c.get("name") for c in artifacts] == ["scanner.exe", "sigdb.bin"]
    failure = artifacts[0].find("failure")
    assert failure is not None
    assert failure.get("type") == "different"
    assert failure.get("message") == "different: 8 differing runs (212 bytes), 7 not allowed"
    assert ".text [code]: 6 runs, 192 bytes, 6 not allowed" in (failure.text or "")
    in_toto = checks.findall("testcase")[1].find("failure")
    assert in_toto is not None and "functionary" in (in_toto.text or "")


def test_passing_run_has_no_failures() -> None:
    root = parse(samples.signature_only())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "0")


def test_inconclusive_run_is_an_error() -> None:
    root = parse(samples.inconclusive())
    error = root.find("testsuite/testcase/error")
    assert error is not None and error.get("type") == "inconclusive"
    assert root.get("errors") == "1"


def test_control_characters_and_markup_stay_well_formed() -> None:
    report = samples.hostile()
    evil = replace(report.artifacts[0], path="bin/\x1b[31mred\x00\x07")
    root = parse(replace(report, artifacts=(evil,)))
    check_structure(root)
    names = [c.get("name") for c in root.iter("testcase")]
    assert "bin/\\x1b[31mred\\x00\\x07" in names
    assert any(samples.XSS in (c.get("name") or "") for c in root.iter("testcase"))
