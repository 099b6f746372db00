"""The HTML report in a real browser: Debian's chromium, headless, offline.

Checks that the page loads with no console message at all (a control page proves the scan
catches them), that a screenshot is not blank, that the byte map is in the DOM for a differing
artifact, and that attacker strings stay text. Skipped only when chromium is absent outside CI.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import render_samples as samples
from reprover.model import Report
from reprover.render import render

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (CI installs it from .ci/apt-packages.txt and runs these)",
)


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium on a local file with a fresh profile; fail on a non-zero exit."""
    assert CHROMIUM is not None, "chromium must be installed in CI (.ci/apt-packages.txt)"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def console_lines(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """The DOM after load, and every console message chromium logged while loading."""
    done = chromium(
        page, tmp / f"profile-{page.stem}", "--enable-logging=stderr", "--v=0", "--dump-dom"
    )
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def write(report: Report, path: Path) -> Path:
    path.write_bytes(render(report, "html"))
    return path


def pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG into rows of raw pixel bytes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def test_console_scan_catches_messages(tmp_path: Path) -> None:
    """Control: a page whose image the CSP blocks must show up in the scan."""
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        '<img src="http://127.0.0.1:9/x.png"><p>control</p>'
    )
    _, lines = console_lines(page, tmp_path)
    assert any("Content Security Policy" in line for line in lines), lines


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_reports_load_without_console_messages(name: str, tmp_path: Path) -> None:
    report = samples.ALL[name]()
    dom, lines = console_lines(write(report, tmp_path / f"{name}.html"), tmp_path)
    assert lines == []
    assert f"reprover: {report.verdict.value.upper()}" in dom
    differing = [a for a in report.artifacts if a.differences]
    assert dom.count('<svg class="bytemap"') == len(differing)
    if differing:
        assert '<rect class="mark ' in dom


def test_attacker_strings_stay_text_in_the_dom(tmp_path: Path) -> None:
    dom, lines = console_lines(write(samples.hostile(), tmp_path / "hostile.html"), tmp_path)
    assert lines == []
    assert "<script" not in dom and "<img" not in dom
    assert "&lt;script&gt;alert" in dom


def test_screenshot_is_not_blank(tmp_path: Path) -> None:
    page = write(samples.tampered(), tmp_path / "tampered.html")
    shot = tmp_path / "tampered.png"
    chromium(page, tmp_path / "profile-shot", "--window-size=1000,1400", f"--screenshot={shot}")
    width, bpp, rows = pixels(shot.read_bytes())
    colours: set[bytes] = set()
    dark = red = 0
    for row in rows[::4]:
        for x in range(0, width * bpp, bpp * 4):
            px = row[x : x + 3]
            colours.add(px)
            dark += px[0] < 90 and px[1] < 90 and px[2] < 90
            red += px[0] > 150 and px[1] < 80 and px[2] < 80
    assert len(colours) > 50  # text, tables, the verdict banner and the map's colours
    assert dark > 500  # there is text
    assert red > 10  # the disallowed code changes are drawn in red
