"""The HTML auditor report: content, escaping, the byte map, summarized ledgers, stability."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

import render_samples as samples
from reprover.model import Report
from reprover.render import byte_map, html, render

SVG = "{http://www.w3.org/2000/svg}"


class Tags(HTMLParser):
    """Collect every start tag with its attributes, and the text, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(report: Report) -> Tags:
    parser = Tags()
    parser.feed(render(report, "html").decode())
    return parser


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_every_outcome_states_verdict_artifacts_digests_and_command(name: str) -> None:
    report = samples.ALL[name]()
    page = render(report, "html").decode()
    assert page.startswith("<!DOCTYPE html>")
    assert f'<header class="verdict {report.verdict.value}">' in page
    for artifact in report.artifacts:
        assert artifact.path in page
        for digest in (artifact.released, artifact.rebuilt):
            assert digest is not None
            assert digest.sha256 in page
            assert f"{digest.size:,} bytes" in page
    assert samples.PIN.commit in page and samples.PIN.tree in page
    assert "reprover verify reprover.toml --build-path /tmp/reprover-build" in page
    assert render(report, "html") == render(report, "html")


def test_verdict_sentences_name_what_failed() -> None:
    text = "".join(parse(samples.tampered()).text)
    assert "FAIL: 1 of 2 artifacts does not match: scanner.exe (different); 1 of 2 checks" in text
    assert "failed: in-toto." in text
    sig = "".join(parse(samples.signature_only()).text)
    assert "PASS: the only artifact (1 signature-only) matches what the source builds from " in sig
    assert "INCONCLUSIVE: no released artifact was compared" in " ".join(
        parse(samples.inconclusive()).text
    )


def test_page_is_self_contained_and_scriptless() -> None:
    parser = parse(samples.tampered())
    tags = {tag for tag, _ in parser.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags
    for _, attrs in parser.tags:
        for key, value in attrs:
            assert not key.startswith("on")
            if key in {"src", "href"}:
                assert value is not None and value.startswith("#"), (key, value)
    csp = [
        dict(a)
        for t, a in parser.tags
        if t == "meta" and ("http-equiv", "Content-Security-Policy") in a
    ]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_attacker_strings_are_inert_text() -> None:
    parser = parse(samples.hostile())
    assert [t for t, _ in parser.tags if t in {"script", "img"}] == []
    assert all(not k.startswith("on") for _, attrs in parser.tags for k, _ in attrs)
    text = "".join(parser.text)
    # every place the string was put shows it as text, literally
    assert text.count(samples.XSS) >= 10


def _map_of(report: Report, index: int = 0) -> ET.Element:
    picture = byte_map.render_map(report.artifacts[index], ident="t")
    assert picture is not None
    return ET.fromstring(picture.svg)  # noqa: S314 - our own output


def test_byte_map_draws_differences_where_they_fall() -> None:
    report = samples.signature_only()
    svg = _map_of(report)
    marks = [r for r in svg.iter(f"{SVG}rect") if "mark" in (r.get("class") or "")]
    cert = [r for r in marks if r.get("class") == "mark signature"]
    scale = report.artifacts[0].released.size  # type: ignore[union-attr]
    expected_x = byte_map.PLOT_X + 0x6A00 * byte_map.PLOT_WIDTH // scale
    # the certificate table sits at the end of the file, in the top row and its own row
    assert sum(1 for r in cert if int(r.get("x", "0")) == expected_x) == 2
    right = max(int(r.get("x", "0")) + int(r.get("width", "0")) for r in cert)
    assert right == byte_map.PLOT_X + byte_map.PLOT_WIDTH
    # allowed differences are drawn short; the rebuilt file's end is marked
    assert all(int(r.get("height", "0")) < byte_map.ROW for r in marks)
    ends = [t.text for t in svg.iter(f"{SVG}text") if t.text and "ends" in t.text]
    assert ends == ["rebuilt ends"]


def test_byte_map_marks_disallowed_code_tall_and_red() -> None:
    svg = _map_of(samples.tampered())
    code = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "mark code"]
    assert code and all(int(r.get("height", "0")) == byte_map.ROW for r in code)
    assert {r.get("fill") for r in code} == {byte_map.KIND_COLOURS["code"]}
    labels = [t.findtext(f"{SVG}title") for t in svg.iter(f"{SVG}text")]
    assert labels[1:4] == ["pe.coff.TimeDateStamp", ".text", ".data"]  # their own regions


def test_identical_artifacts_have_no_map() -> None:
    assert byte_map.render_map(samples.identical().artifacts[0], ident="t") is None
    assert '<svg class="bytemap"' not in render(samples.identical(), "html").decode()


def test_large_ledger_is_summarized_with_counts_and_bounded() -> None:
    report = samples.tampered(runs=20_000)
    page = render(report, "html").decode()
    runs = len(report.artifacts[0].differences)
    hidden = runs - html.MAX_LEDGER_ROWS
    hidden_bytes = sum(d.length for d in report.artifacts[0].differences[html.MAX_LEDGER_ROWS :])
    assert f"{hidden:,} more runs ({hidden_bytes:,} bytes, {hidden:,} not allowed)" in page
    assert page.count('<td class="mono num">') == html.MAX_LEDGER_ROWS
    assert f"Ledger ({runs:,} runs" in page
    assert len(page) < 250_000  # binned per pixel column, not one element per run


def test_many_regions_share_a_row_and_say_so() -> None:
    from dataclasses import replace

    base = samples.tampered()
    diffs = tuple(
        replace(d, region=f"r{i}", context=(f"region{i}",))
        for i, d in enumerate(samples.tampered(runs=30).artifacts[0].differences)
    )
    artifact = replace(base.artifacts[0], differences=diffs)
    picture = byte_map.render_map(artifact, ident="t")
    assert picture is not None
    merged = len(diffs) - (byte_map.MAX_LANES - 1)
    assert (
        f"{merged} region labels beyond the first {byte_map.MAX_LANES - 1} share the last row"
        in picture.caption
    )
    assert f"{merged} other regions" in picture.svg
    assert "the regions enclosing them" in picture.caption


def test_rows_use_enclosing_regions_when_own_regions_are_too_many() -> None:
    from dataclasses import replace

    base = samples.tampered(runs=30)
    diffs = tuple(
        replace(d, region=f"field{i}") for i, d in enumerate(base.artifacts[0].differences)
    )
    picture = byte_map.render_map(replace(base.artifacts[0], differences=diffs), ident="t")
    assert picture is not None
    svg = ET.fromstring(picture.svg)  # noqa: S314 - our own output
    labels = [t.findtext(f"{SVG}title") for t in svg.iter(f"{SVG}text")][1:4]
    assert labels == ["pe.coff", "pe.section[.text]", "pe.section[.data]"]
