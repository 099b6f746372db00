"""The Markdown report: GitHub tables of the right shape, hostile strings rendered as text."""

from __future__ import annotations

import re

import pytest

import gfm
import render_samples as samples
from reprover.render import markdown, render

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def tables(text: str) -> list[list[str]]:
    """Consecutive lines that start with '|' form one table."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


@pytest.mark.parametrize("name", sorted(samples.EVERY))
def test_every_table_row_has_as_many_cells_as_its_header(name: str) -> None:
    report = samples.EVERY[name]()
    text = render(report, "markdown").decode()
    for table in tables(text):
        width = len(_UNESCAPED_PIPE.findall(table[0]))
        assert re.fullmatch(r"(\| ?-+:? ?)+\|", table[1].replace(" ", "")), table[1]
        for row in table:
            assert len(_UNESCAPED_PIPE.findall(row)) == width, row


def test_tampered_summary_lists_artifacts_checks_and_regions() -> None:
    text = render(samples.tampered(), "markdown").decode()
    assert text.startswith("## \u274c reprover verify: FAIL\n")
    assert "| `scanner.exe` | \u274c different |" in text
    assert "| `sigdb.bin` | \u2705 identical |" in text
    assert "| `in-toto` | \u274c failed |" in text
    assert "| `.text` | code | **no** | 6 | 192 |" in text
    assert "reprover verify reprover.toml --build-path /tmp/reprover-build\n```" in text


def test_input_strings_are_code_spans_they_cannot_close() -> None:
    assert markdown.cell("a|b") == "`a\\|b`"
    assert markdown.md_code("[x](http://e)") == "`[x](http://e)`"
    assert markdown.md_code("hi @team\nnext") == "`hi @team\\nnext`"
    assert markdown.md_code("abc`def") == "``abc`def``"
    assert markdown.md_code("`x") == "`` `x ``"


def test_renders_as_html_tables() -> None:
    page = gfm.to_html(render(samples.tampered(runs=3), "markdown").decode())
    assert page.count("<table>") == 4
    assert "<td><code>scanner.exe</code></td>" in page
    hostile = gfm.to_html(render(samples.hostile(), "markdown").decode())
    assert "<script" not in hostile and "<img" not in hostile


def test_long_region_lists_are_summarized_with_counts() -> None:
    from dataclasses import replace

    report = samples.tampered(runs=100)
    diffs = tuple(replace(d, region=f"r{i}") for i, d in enumerate(report.artifacts[0].differences))
    report = replace(report, artifacts=(replace(report.artifacts[0], differences=diffs),))
    text = render(report, "markdown").decode()
    hidden = len(diffs) - markdown.MAX_REGION_ROWS
    assert f"| {hidden:,} more regions | | | {hidden:,} |" in text


def test_any_string_in_a_table_cell_renders_as_exactly_its_visible_form() -> None:
    """GitHub's renderer (cmark-gfm) on 400 random hostile strings, one table: each cell is one
    code span holding the string's visible form, and the table keeps its shape."""
    import html
    import random

    from reprover.render.safe import visible

    rng = random.Random(19)  # noqa: S311 - a fixed corpus, not a secret
    alphabet = [*"`|\\ *_[]()<>!#&@:/.~-=+ab\n\x1b\u202e\u200b\u0430", "www.", "http://"]
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14))) for _ in range(400)]
    rows = [f"| {markdown.cell(name)} | z |" for name in names]
    page = gfm.to_html("| name | z |\n| --- | --- |\n" + "\n".join(rows) + "\n")
    cells = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>z</td>\s*</tr>", page, re.S)
    assert len(cells) == len(names)
    for name, cell in zip(names, cells, strict=True):
        match = re.fullmatch(r"<code>(.*)</code>", cell, re.S)
        assert match is not None, (name, cell)
        shown = html.unescape(match.group(1))
        expected = visible(name)
        assert shown == expected or (not expected.strip(" ") and shown.strip(" ") == ""), name
        assert "<a " not in cell and "<img" not in cell
