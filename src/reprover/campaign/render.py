"""The campaign report in every format: text, JSON, Markdown, HTML, JUnit.

Owns: the shape of each format's campaign summary (one line or row per manifest: verdict,
exit code, worker, seconds, attempts, report SHA-256, error). Every string that came from an
input (a manifest path, an error message, a worker address) is escaped for its format with the
per-release renderers' rule (`reprover.render.safe`).
Does not own: the JSON shape (`model.to_json`) or per-release reports (`reprover.render`).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from xml.sax.saxutils import quoteattr

from reprover.campaign.model import CampaignReport, CampaignResult, summary, to_json
from reprover.errors import InputError
from reprover.render.safe import html_text, md_code, visible

__all__ = ["RENDERERS", "render", "visible"]

ICONS = {"pass": "\u2705", "fail": "\u274c", "bad-input": "\u26d4", "inconclusive": "\u26a0\ufe0f"}


def _counts(report: CampaignReport) -> str:
    counts = summary(report)
    return ", ".join(f"{counts[v]} {v}" for v in sorted(counts)) or "no manifests"


def _headline(report: CampaignReport) -> str:
    shard = f" (shard {report.shard[0]}/{report.shard[1]})" if report.shard else ""
    return (
        f"campaign{shard}: {report.verdict.upper()} ({_counts(report)}; "
        f"{len(report.results)} of {report.total} manifest(s)) on {report.scheduler}"
    )


def render_text(report: CampaignReport) -> bytes:
    """A terminal summary: the verdict, then one line per manifest and its error, then notes."""
    lines = [visible(_headline(report)), ""]
    for r in report.results:
        lines.append(
            f"  {r.verdict:<12} exit {r.exit_code}  {visible(r.manifest)}  "
            f"[{visible(r.worker or '-')}, {r.seconds:.1f} s"
            + (f", {r.attempts} attempts" if r.attempts > 1 else "")
            + "]"
        )
        if r.report_sha256:
            lines.append(f"      report sha256 {r.report_sha256}")
        if r.error:
            lines.extend(f"      {visible(line)}" for line in r.error.splitlines()[:12])
    if report.notes:
        lines += ["", "notes:", *(f"  - {visible(n)}" for n in report.notes)]
    return ("\n".join(lines) + "\n").encode()


def render_markdown(report: CampaignReport) -> bytes:
    """A step-summary table: one row per manifest."""
    icon = ICONS.get(report.verdict, "")
    lines = [
        f"## {icon} reprover campaign: {report.verdict.upper()}",
        "",
        md_code(_headline(report)),
        "",
        "| manifest | verdict | exit | worker | seconds | attempts | report SHA-256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {md_code(r.manifest, in_table=True)} | {ICONS.get(r.verdict, '')} {r.verdict} "
            f"| {r.exit_code} | {md_code(r.worker or '-', in_table=True)} | {r.seconds:.1f} "
            f"| {r.attempts} | {md_code((r.report_sha256 or '')[:16], in_table=True)} |"
        )
    errors = [r for r in report.results if r.error]
    if errors:
        lines += ["", "### Errors", ""]
        lines += [f"- {md_code(r.manifest)}: {md_code(r.error or '')}" for r in errors]
    if report.notes:
        lines += ["", "### Notes", "", *(f"- {md_code(n)}" for n in report.notes)]
    return ("\n".join(lines) + "\n").encode()


def render_html(report: CampaignReport) -> bytes:
    """One self-contained page (no script, no remote content) with the results table."""
    rows = "".join(_html_row(r) for r in report.results)
    notes = "".join(f"<li>{html_text(n)}</li>" for n in report.notes)
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>reprover campaign: {escape(report.verdict.upper())}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        ".pass{color:#060}.fail,.bad-input{color:#a00}.inconclusive{color:#a60}"
        "code{font-size:12px}</style></head><body>"
        f"<h1 class={quoteattr(report.verdict)}>reprover campaign: "
        f"{escape(report.verdict.upper())}</h1><p>{html_text(_headline(report))}</p>"
        "<table><tr><th>manifest</th><th>verdict</th><th>exit</th><th>worker</th>"
        f"<th>seconds</th><th>attempts</th><th>report SHA-256</th><th>error</th></tr>{rows}"
        "</table>" + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "") + "</body></html>\n"
    )
    return page.encode()


def _html_row(r: CampaignResult) -> str:
    return (
        f"<tr><td><code>{html_text(r.manifest)}</code></td>"
        f"<td class={quoteattr(r.verdict)}>{escape(r.verdict)}</td><td>{r.exit_code}</td>"
        f"<td>{html_text(r.worker or '-')}</td><td>{r.seconds:.1f}</td><td>{r.attempts}</td>"
        f"<td><code>{escape(r.report_sha256 or '')}</code></td>"
        f"<td>{html_text(r.error or '')}</td></tr>"
    )


def render_junit(report: CampaignReport) -> bytes:
    """One test case per manifest (suite `campaign`): a failure or an error unless it passed."""
    cases = []
    for r in report.results:
        name = quoteattr(_xml(r.manifest))
        body = ""
        message = _xml(r.error or f"verdict {r.verdict}, exit code {r.exit_code}")
        if r.verdict == "fail":
            body = f"<failure message={quoteattr(message)}/>"
        elif r.verdict != "pass":
            body = f"<error message={quoteattr(message)}/>"
        cases.append(
            f'  <testcase classname="campaign" name={name} time="{r.seconds:.2f}">{body}</testcase>'
        )
    failures = sum(r.verdict == "fail" for r in report.results)
    errors = sum(r.verdict not in ("pass", "fail") for r in report.results)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n'
        f'<testsuite name="campaign" tests="{len(report.results)}" failures="{failures}" '
        f'errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n</testsuites>\n"
    ).encode()


def _xml(text: str) -> str:
    return visible(text)  # no control character (invalid in XML) survives


RENDERERS: dict[str, Callable[[CampaignReport], bytes]] = {
    "text": render_text,
    "json": to_json,
    "markdown": render_markdown,
    "html": render_html,
    "junit": render_junit,
}


def render(report: CampaignReport, fmt: str) -> bytes:
    """Render the campaign report in `fmt`.

    Raises:
        InputError: the format is unknown.
    """
    try:
        return RENDERERS[fmt](report)
    except KeyError:
        raise InputError(f"unknown report format {fmt!r}") from None
