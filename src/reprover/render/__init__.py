"""Renderers: pure functions from a `Report` to bytes, one module per format.

Owns: the mapping from format names to renderers.
Does not own: deciding anything (verdicts live in `reprover.model`) or writing files.
"""

from __future__ import annotations

from collections.abc import Callable

from reprover.errors import InputError
from reprover.model import Report
from reprover.render import html, json_report, junit, markdown, text

Renderer = Callable[[Report], bytes]

RENDERERS: dict[str, Renderer] = {
    "text": text.render,
    "json": json_report.render,
    "markdown": markdown.render,
    "html": html.render,
    "junit": junit.render,
}


def render(report: Report, fmt: str) -> bytes:
    """Render `report` in format `fmt`.

    Raises:
        InputError: the format is unknown.
    """
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise InputError(
            f"unknown report format {fmt!r}", hint=f"choose one of: {', '.join(RENDERERS)}"
        ) from None
    return renderer(report)
