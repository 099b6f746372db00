"""The HTML auditor report: one self-contained page a reviewer reads on screen or on paper.

Owns: the page's structure (verdict sentence; artifacts with verdicts, sizes and digests; source,
recipe, toolchain and build path; checks with findings; per differing artifact a byte map, a
region summary and the ledger; the command that repeats the run), its inline CSS (screen and
print) and escaping every string that comes from the report. No script, no external asset; a
Content-Security-Policy forbids both, as a second line of defence behind the escaping.
Does not own: verdicts (see `reprover.model`), the shared sentences (`facts`), the SVG
(`byte_map`) or writing files.
"""

from __future__ import annotations

from html import escape

from reprover import __version__
from reprover.model import (
    REPORT_SCHEMA,
    ArtifactResult,
    Difference,
    Digest,
    Report,
    artifact_passes,
)
from reprover.render import byte_map, facts
from reprover.render.safe import html_text as h
from reprover.render.safe import suspicious_note

MAX_LEDGER_ROWS = 200
MAX_REGION_ROWS = 300

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --pass: #17692b; --fail: #a4161a; --inconclusive: #8a5a00; --line: #d0d0d0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
  max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 28px; margin: 0 0 6px; }
h2 { font-size: 20px; border-bottom: 2px solid #333; padding-bottom: 3px; margin-top: 32px; }
h3 { font-size: 17px; margin: 22px 0 6px; overflow-wrap: anywhere; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 13px; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #f1f1f1; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.path { min-width: 11em; }
.verdict { border-left: 8px solid; padding: 12px 18px; margin-bottom: 18px; }
.verdict.pass { border-color: var(--pass); background: #eaf6ec; }
.verdict.fail { border-color: var(--fail); background: #fbeaea; }
.verdict.inconclusive { border-color: var(--inconclusive); background: #fdf4e1; }
.verdict p { font-size: 17px; margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 7px; border-radius: 3px; font-weight: 600;
  font-size: 13px; border: 1px solid; white-space: nowrap; }
.badge.ok { color: var(--pass); border-color: var(--pass); }
.badge.bad { color: var(--fail); border-color: var(--fail); }
.badge.info { color: #444; border-color: #888; }
.note { color: #444; font-size: 13px; }
.summary-row td { background: #fff8db; font-style: italic; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; border: 1px solid #0003; }
pre { background: #f4f4f4; border: 1px solid var(--line); padding: 10px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
svg.bytemap { display: block; max-width: 100%; height: auto; font-family: system-ui, sans-serif; }
section.artifact + section.artifact { border-top: 1px solid var(--line); }
footer { margin-top: 36px; color: #555; font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2, h3 { break-after: avoid; }
  tr, svg.bytemap, .verdict { break-inside: avoid; }
  section.artifact { break-before: auto; }
  a { color: inherit; text-decoration: none; }
}
"""


def render(report: Report) -> bytes:
    """Render the report as one self-contained UTF-8 HTML page."""
    verdict = report.verdict.value
    body = [
        f'<header class="verdict {verdict}"><h1>reprover: {verdict.upper()}</h1>'
        f"<p>{facts.verdict_sentence(report, h)}</p></header>",
        _inconclusive(report),
        _overview(report),
        _provenance(report),
        _checks(report),
        *_details(report),
        _reproduce(report),
        f"<footer>reprover {escape(__version__)} \u00b7 {REPORT_SCHEMA}"
        + (f" \u00b7 generated {escape(report.timestamp)}" if report.timestamp else "")
        + "</footer>",
    ]
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>reprover {escape(report.command)}: {verdict.upper()}</title>"
        f"<style>{CSS}</style></head>\n<body>\n"
        + "\n".join(p for p in body if p)
        + "\n</body></html>\n"
    )
    return page.encode()


def _badge(artifact: ArtifactResult, strict: bool) -> str:
    cls = "ok" if artifact_passes(artifact, strict=strict) else "bad"
    return f'<span class="badge {cls}">{escape(artifact.verdict.value)}</span>'


def _digest_cell(digest: Digest | None) -> str:
    if digest is None:
        return '<td class="note">none</td>'
    return f"<td><code>{escape(digest.sha256)}</code><br>{digest.size:,} bytes</td>"


def _overview(report: Report) -> str:
    if not report.artifacts:
        return '<h2 id="artifacts">Artifacts</h2><p class="note">No artifact was compared.</p>'
    rows = []
    for index, artifact in enumerate(report.artifacts):
        count = len(artifact.differences)
        diffs = (
            f'<a href="#a{index}">{facts.plural(count, "run")}, '
            f"{facts.plural(sum(d.length for d in artifact.differences), 'byte')}</a>"
            if count
            else "none"
        )
        rows.append(
            f'<tr><td class="path"><code>{h(artifact.path)}</code>{_flag(artifact.path)}</td>'
            f"<td>{_badge(artifact, report.strict)}</td>"
            f"{_digest_cell(artifact.released)}{_digest_cell(artifact.rebuilt)}<td>{diffs}</td></tr>"
        )
    counts = ", ".join(f"{n} {v}" for v, n in facts.verdict_counts(report).items())
    left, right = facts.sides(report)
    return (
        '<h2 id="artifacts">Artifacts</h2>'
        f'<p class="note">{facts.plural(len(report.artifacts), "artifact")}: {escape(counts)}.'
        + (
            " Strict mode (--strict): only byte-identical artifacts pass."
            if report.strict and report.command == "verify"
            else ""
        )
        + "</p><table><thead><tr><th>Artifact</th><th>Verdict</th>"
        f"<th>{left.capitalize()} (SHA-256, size)</th>"
        f"<th>{right.capitalize()} (SHA-256, size)</th><th>Differences</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _row(label: str, value: str) -> str:
    return f"<tr><th>{escape(label)}</th><td>{value}</td></tr>"


def _provenance(report: Report) -> str:
    rows = []
    if report.source is not None:
        src = report.source
        rows += [
            _row("Repository", f"<code>{h(src.repo)}</code>"),
            _row("Commit", f"<code>{h(src.commit)}</code>"),
            _row("Tree", f"<code>{h(src.tree)}</code>"),
            _row(
                "Commit signature",
                f"signed by {h(src.signer)}" if src.signer else "not required by the manifest",
            ),
        ]
    else:
        rows.append(_row("Source", '<span class="note">not pinned in this run</span>'))
    if report.build is not None:
        build = report.build
        command = build.command if isinstance(build.command, str) else " ".join(build.command)
        rows += [
            _row("Recipe", f"<code>{h(command)}</code>"),
            _row("Build path", f"<code>{h(build.build_path)}</code>"),
            _row("Isolation", h(build.isolation)),
        ]
        if build.env:
            env = "<br>".join(f"<code>{h(k)}={h(v)}</code>" for k, v in sorted(build.env.items()))
            rows.append(_row("Recipe environment", env))
        tools = "<br>".join(f"<code>{h(k)}</code>: {h(v)}" for k, v in build.toolchain.items())
        rows.append(_row("Toolchain", tools or '<span class="note">none recorded</span>'))
    if report.policy is not None:
        allow = ", ".join(f"<code>{h(rule)}</code>" for rule in report.policy.allow)
        rows.append(_row("Policy allows", allow or "nothing (byte-identical or signature-only)"))
    if report.manifest_sha256:
        rows.append(
            _row(
                "Manifest SHA-256 (what verify-attestation --policy-digest takes)",
                f"<code>{escape(report.manifest_sha256)}</code>",
            )
        )
    if report.policy_sha256:
        rows.append(
            _row(
                "Policy rules SHA-256 (the allow list alone, not for --policy-digest)",
                f"<code>{escape(report.policy_sha256)}</code>",
            )
        )
    return '<h2 id="source">Source, recipe and build</h2><table>' + "".join(rows) + "</table>"


def _checks(report: Report) -> str:
    if not report.checks:
        return '<h2 id="checks">Checks</h2><p class="note">No trust check ran in this run.</p>'
    rows = []
    for check in report.checks:
        badge = (
            '<span class="badge ok">passed</span>'
            if check.passed
            else ('<span class="badge bad">FAILED</span>')
        )
        findings = (
            "<ul>" + "".join(f"<li>{h(f)}</li>" for f in check.findings) + "</ul>"
            if check.findings
            else ""
        )
        rows.append(
            f"<tr><td><code>{h(check.name)}</code></td><td>{badge}</td>"
            f"<td>{h(check.detail)}{findings}</td></tr>"
        )
    return (
        '<h2 id="checks">Checks</h2><table><thead><tr><th>Check</th><th>Result</th>'
        "<th>Detail and findings</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _details(report: Report) -> list[str]:
    out: list[str] = []
    for index, artifact in enumerate(report.artifacts):
        if not artifact.differences and not artifact.notes:
            continue
        if not out:
            out.append('<h2 id="differences">Differences</h2>')
        out.append(_artifact(artifact, index, report.strict, facts.sides(report)))
    return out


def _artifact(artifact: ArtifactResult, index: int, strict: bool, sides: tuple[str, str]) -> str:
    diffs = artifact.differences
    parts = [
        f'<section class="artifact" id="a{index}"><h3><code>{h(artifact.path)}</code> '
        f"{_badge(artifact, strict)}</h3>"
    ]
    size_note = facts.sizes_note(artifact)
    if size_note:
        parts.append(f'<p class="note">{escape(size_note)}.</p>')
    if artifact.notes:
        parts.append(
            "<ul>" + "".join(f'<li class="note">{h(n)}</li>' for n in artifact.notes) + "</ul>"
        )
    picture = byte_map.render_map(artifact, ident=f"bm{index}")
    if picture is not None:
        legend = (
            '<span><i class="swatch" style="background:#555"></i>tall, solid: not allowed</span>'
            '<span><i class="swatch" style="background:#5558;height:7px"></i>short, pale: '
            "allowed by the policy</span>"
        ) + "".join(
            f'<span><i class="swatch" style="background:{byte_map.KIND_COLOURS.get(k, "#000")}">'
            f"</i>{escape(k)}</span>"
            for k in picture.kinds
        )
        parts.append(
            f'<figure>{picture.svg}<figcaption><div class="legend">{legend}</div>'
            f'<p class="note">{escape(picture.caption)}</p></figcaption></figure>'
        )
    if diffs:
        parts.append(_regions_table(artifact))
        parts.append(_ledger_table(artifact, sides))
    return "".join(parts) + "</section>"


def _regions_table(artifact: ArtifactResult) -> str:
    groups = facts.group_by_region(artifact.differences)
    rows = []
    for group in groups[:MAX_REGION_ROWS]:
        allowed = (
            "all"
            if group.all_allowed
            else "none"
            if not group.allowed_runs
            else f"{group.allowed_runs} of {group.runs}"
        )
        if group.rules:
            allowed += " (" + ", ".join(h(r) for r in group.rules) + ")"
        context = " \u203a ".join(h(c) for c in group.context)
        rows.append(
            f"<tr><td><code>{h(group.region)}</code>"
            + (f'<br><span class="note">in {context}</span>' if context else "")
            + f"</td><td>{escape(', '.join(group.kinds))}</td><td>{allowed}</td>"
            f'<td class="num">{group.runs:,}</td><td class="num">{group.bytes:,}</td>'
            f'<td class="mono">0x{group.first_offset:x}\u20130x{group.last_byte:x}</td></tr>'
        )
    hidden = groups[MAX_REGION_ROWS:]
    if hidden:
        rows.append(
            f'<tr class="summary-row"><td colspan="6">{len(hidden):,} more regions with '
            f"{sum(g.runs for g in hidden):,} runs and {sum(g.bytes for g in hidden):,} bytes "
            "are not listed here; the JSON report lists every run.</td></tr>"
        )
    return (
        f"<h4>By region ({facts.plural(len(groups), 'region')})</h4>"
        "<table><thead><tr><th>Region</th><th>Kind</th><th>Allowed</th>"
        "<th class=num>Runs</th><th class=num>Bytes</th>"
        "<th>First\u2013last byte</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _ledger_table(artifact: ArtifactResult, sides: tuple[str, str]) -> str:
    diffs = artifact.differences
    rows = []
    for diff in diffs[:MAX_LEDGER_ROWS]:
        allowed = (f"yes ({h(diff.rule)})" if diff.rule else "yes") if diff.allowed else "<b>no</b>"
        about = " ".join(h(part) for part in (diff.symbol or "", diff.detail or "") if part)
        about += _code(diff, sides)
        rows.append(
            f'<tr><td class="mono num">0x{diff.offset:08x}</td><td class="num">{diff.length:,}</td>'
            f"<td><code>{h(diff.region)}</code></td><td>{escape(diff.kind.value)}</td>"
            f"<td>{allowed}</td><td>{escape(diff.cause.value)}</td><td>{about}</td></tr>"
        )
    hidden = diffs[MAX_LEDGER_ROWS:]
    if hidden:
        rows.append(
            f'<tr class="summary-row"><td colspan="7">{len(hidden):,} more runs '
            f"({sum(d.length for d in hidden):,} bytes, {sum(1 for d in hidden if not d.allowed):,}"
            " not allowed) follow; they are counted in the region table above, and the JSON "
            "report (--format json) lists every run.</td></tr>"
        )
    return (
        f"<h4>Ledger ({facts.plural(len(diffs), 'run')}, "
        f"{facts.plural(sum(d.length for d in diffs), 'byte')})</h4>"
        "<table><thead><tr><th class=num>Offset</th><th class=num>Length</th><th>Region</th>"
        "<th>Kind</th><th>Allowed</th><th>Cause</th>"
        f"<th>Symbol, detail (values {sides[0]} \u2192 {sides[1]})</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _code(diff: Difference, sides: tuple[str, str]) -> str:
    """The changed instructions of a code difference, one side after the other."""
    code = diff.disassembly
    if code is None:
        return ""
    if code.note:
        return f"<br><i>{h(code.note)}</i>"
    lines = [f"{sides[0]}: {line}" for line in code.released]
    lines += [f"{sides[1]}: {line}" for line in code.rebuilt]
    return '<pre class="code">' + "\n".join(h(x) for x in lines) + "</pre>"


def _reproduce(report: Report) -> str:
    command, note = facts.reproduce_command(report)
    return (
        '<h2 id="reproduce">Repeat this verification</h2>'
        f'<pre><code>{h(command)}</code></pre><p class="note">{h(note)}</p>'
    )


def _flag(name: str) -> str:
    note = suspicious_note(name)
    return "" if note is None else f'<br><span class="badge bad">{escape(note)}</span>'


def _inconclusive(report: Report) -> str:
    if report.inconclusive_reason is None:
        return ""
    parts = [
        '<h2 id="inconclusive">Why the run is inconclusive</h2>'
        f"<p>{h(report.inconclusive_reason)}</p>"
    ]
    if report.log_tail:
        lines = "\n".join(h(line) for line in report.log_tail.splitlines())
        parts.append(f"<pre><code>{lines}</code></pre>")
    return "".join(parts)
