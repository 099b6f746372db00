"""The byte-map picture: an inline SVG of where in a file its differences fall.

Owns: laying out one artifact's differing runs on a horizontal map of the file (offsets in the
released file), one row per region label, coloured by kind, tall and solid when not allowed,
short and pale when the policy allows them; and the caption that says exactly what is drawn.
Does not own: the ledger's labels (see `reprover.compare`) or the page around it (`html`).

The report holds the differences' labels, not a full structure map of the file, so a region's
row spans from its first to its last differing byte: the caption says so. The SVG's size is
bounded whatever the ledger's size: runs are binned per pixel column and merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from reprover.model import ArtifactResult, Difference, Kind
from reprover.render.safe import visible

WIDTH = 960
LABEL_WIDTH = 230
PLOT_X = LABEL_WIDTH + 10
PLOT_WIDTH = WIDTH - PLOT_X - 12
ROW = 22
GAP = 6
TOP = 8
MAX_LANES = 14
LABEL_CHARS = 34
MIN_MARK = 3

KIND_COLOURS: dict[str, str] = {
    Kind.TIMESTAMP.value: "#1f77b4",
    Kind.CHECKSUM.value: "#17becf",
    Kind.BUILD_ID.value: "#9467bd",
    Kind.DEBUG_PATH.value: "#8c564b",
    Kind.PDB_GUID.value: "#bcbd22",
    Kind.SIGNATURE.value: "#2ca02c",
    Kind.CODE.value: "#d62728",
    Kind.DATA.value: "#ff7f0e",
    Kind.DEBUG_INFO.value: "#7f7f7f",
    Kind.SYMBOLS.value: "#e377c2",
    Kind.METADATA.value: "#6b6ecf",
    Kind.OVERLAY.value: "#393b79",
    Kind.PADDING.value: "#a0a0a0",
    Kind.UNPARSED.value: "#000000",
    Kind.HIDDEN.value: "#ff00ff",
}


@dataclass(frozen=True)
class ByteMap:
    """An SVG fragment (already escaped) and the plain-text caption that explains it."""

    svg: str
    caption: str
    kinds: tuple[str, ...]


def lane_label(diff: Difference, level: int) -> str:
    """The label of `diff` at `level`: 0 is its own region, 1 the region enclosing it, ...

    Past the outermost enclosing region, the outermost one.
    """
    labels = (*diff.context, diff.region)
    return labels[max(0, len(labels) - 1 - level)]


def choose_level(diffs: tuple[Difference, ...]) -> int:
    """The most specific labelling level that fits in MAX_LANES rows, else the outermost."""
    deepest = max(len(d.context) for d in diffs)
    for level in range(deepest + 1):
        if len({lane_label(d, level) for d in diffs}) <= MAX_LANES:
            return level
    return deepest


def render_map(artifact: ArtifactResult, *, ident: str) -> ByteMap | None:
    """Draw the differences of `artifact`; None when it has none.

    Args:
        artifact: the artifact result whose ledger is drawn.
        ident: a short id, unique in the page, used for the SVG's title element id.
    """
    diffs = artifact.differences
    if not diffs:
        return None
    released = artifact.released.size if artifact.released else 0
    rebuilt = artifact.rebuilt.size if artifact.rebuilt else 0
    last_end = max(d.offset + d.length for d in diffs)
    scale = max(released, rebuilt, last_end, 1)
    level = choose_level(diffs)
    lanes: dict[str, list[Difference]] = {}
    for diff in diffs:
        lanes.setdefault(lane_label(diff, level), []).append(diff)
    labels = list(lanes)
    merged = 0
    if len(labels) > MAX_LANES:
        shown, rest = labels[: MAX_LANES - 1], labels[MAX_LANES - 1 :]
        other = [d for label in rest for d in lanes[label]]
        lanes = {label: lanes[label] for label in shown}
        lanes[f"{len(rest)} other regions"] = other
        merged = len(rest)
    rows = [("all differences", list(diffs), False), *((k, v, True) for k, v in lanes.items())]
    height = TOP + len(rows) * (ROW + GAP) + 30
    parts = [
        f'<svg class="bytemap" role="img" aria-labelledby="{ident}-t" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-t">Byte map of {escape(visible(artifact.path))}: '
        f"{len(diffs)} differing runs in {len(lanes)} region rows</title>",
    ]
    for index, (label, lane_diffs, hull) in enumerate(rows):
        y = TOP + index * (ROW + GAP)
        parts.extend(_row(label, lane_diffs, y, scale, hull=hull, first=index == 0))
    parts.extend(_axis(TOP + len(rows) * (ROW + GAP), scale, released, rebuilt))
    parts.append("</svg>")
    per_px = scale / PLOT_WIDTH
    resolution = (
        f"One pixel column covers about {per_px:,.0f} bytes"
        if per_px >= 1
        else f"One byte is about {1 / per_px:,.0f} pixel columns wide"
    )
    caption = (
        f"Offsets are in the released file ({released} bytes"
        + (f"; the rebuilt file has {rebuilt}" if rebuilt != released else "")
        + (". A dashed line marks where the shorter file ends" if rebuilt != released else "")
        + "). The top row shows every differing run. Each further row is a region label from "
        "the ledger ("
        + ("the differences' own regions" if level == 0 else "the regions enclosing them")
        + "); its grey band spans from the first to the last differing byte with that "
        "label, not the region's full extent (no structure map is recorded in the report). "
        "Tall solid marks are not allowed by the policy, short pale marks are allowed. "
        f"{resolution}; every run is drawn at least {MIN_MARK} columns wide."
    )
    if merged:
        caption += f" {merged} region labels beyond the first {MAX_LANES - 1} share the last row."
    kinds = tuple(dict.fromkeys(d.kind.value for d in diffs))
    return ByteMap("".join(parts), caption, kinds)


def _x(offset: int, scale: int) -> int:
    return min(PLOT_WIDTH - 1, offset * PLOT_WIDTH // scale)


def _row(
    label: str, diffs: list[Difference], y: int, scale: int, *, hull: bool, first: bool
) -> list[str]:
    label = visible(label)
    short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"
    weight = ' font-weight="bold"' if first else ""
    out = [
        f'<text x="{LABEL_WIDTH}" y="{y + ROW - 7}" text-anchor="end" font-size="12"'
        f"{weight}><title>{escape(label)}</title>{escape(short)}</text>",
        f'<rect x="{PLOT_X}" y="{y}" width="{PLOT_WIDTH}" height="{ROW}" fill="#f4f4f4" '
        'stroke="#d0d0d0" stroke-width="0.5"/>',
    ]
    if hull:
        start = _x(min(d.offset for d in diffs), scale)
        end = max(start + 1, _x(max(d.offset + d.length for d in diffs) - 1, scale) + 1)
        out.append(
            f'<rect class="span" x="{PLOT_X + start}" y="{y + 2}" width="{end - start}" '
            f'height="{ROW - 4}" fill="#d6d6d6"/>'
        )
    columns: dict[tuple[str, bool], set[int]] = {}
    for diff in diffs:
        start = _x(diff.offset, scale)
        end = max(_x(diff.offset + diff.length - 1, scale) + 1, start + MIN_MARK)
        start = min(start, PLOT_WIDTH - MIN_MARK)
        columns.setdefault((diff.kind.value, diff.allowed), set()).update(range(start, end))
    # allowed first, so that a not-allowed mark in the same column is drawn on top
    for (kind, allowed), cols in sorted(
        columns.items(), key=lambda item: (not item[0][1], item[0][0])
    ):
        colour = KIND_COLOURS.get(kind, "#000000")
        top, tall = (y + 6, ROW - 12) if allowed else (y, ROW)
        opacity = ' fill-opacity="0.55"' if allowed else ""
        status = "allowed" if allowed else "not allowed"
        for start, end in _spans(sorted(cols)):
            out.append(
                f'<rect class="mark {kind}" x="{PLOT_X + start}" y="{top}" width="{end - start}" '
                f'height="{tall}" fill="{colour}"{opacity}><title>{kind}, {status}</title></rect>'
            )
    return out


def _spans(columns: list[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for col in columns:
        if spans and spans[-1][1] == col:
            spans[-1] = (spans[-1][0], col + 1)
        else:
            spans.append((col, col + 1))
    return spans


def _axis(y: int, scale: int, released: int, rebuilt: int) -> list[str]:
    out = [
        f'<line x1="{PLOT_X}" y1="{y}" x2="{PLOT_X + PLOT_WIDTH}" y2="{y}" stroke="#555"/>',
    ]
    for step in range(5):
        offset = scale * step // 4
        x = PLOT_X + _x(offset, scale) if step < 4 else PLOT_X + PLOT_WIDTH
        anchor = "start" if step == 0 else "end" if step == 4 else "middle"
        out.append(f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 5}" stroke="#555"/>')
        out.append(
            f'<text x="{x}" y="{y + 18}" font-size="11" text-anchor="{anchor}" '
            f'font-family="monospace">0x{offset:x}</text>'
        )
    ends: dict[int, list[str]] = {}
    for size, which in ((released, "released"), (rebuilt, "rebuilt")):
        if 0 < size < scale:
            ends.setdefault(size, []).append(which)
    for size, names in ends.items():
        which = " and ".join(names)
        x = PLOT_X + _x(size, scale)
        out.append(
            f'<line class="file-end" x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{y}" '
            f'stroke="#333" stroke-dasharray="3 3"><title>end of the {which} file '
            f"(0x{size:x})</title></line>"
            f'<text x="{x - 3}" y="{TOP + 4}" font-size="10" text-anchor="end" fill="#333">'
            f"{which} {'ends' if len(names) == 1 else 'end'}</text>"
        )
    return out
