"""The Markdown report: GitHub-flavoured tables for `$GITHUB_STEP_SUMMARY` and PR comments.

Owns: a compact summary (verdict sentence, artifacts table, checks table, differences grouped
by region, source and build, the command that repeats the run), with every string from the
report escaped so that it renders as text: no HTML, no links, no mentions, no broken tables.
Does not own: verdicts (see `reprover.model`) or the shared sentences (`facts`).
"""

from __future__ import annotations

import re

from reprover.model import Difference, Digest, Report, Verdict, artifact_passes
from reprover.render import facts

MAX_REGION_ROWS = 40
ICONS = {Verdict.PASS: "\u2705", Verdict.FAIL: "\u274c", Verdict.INCONCLUSIVE: "\u26a0\ufe0f"}

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: str) -> str:
    """Escape `text` for a Markdown table cell or paragraph: it renders literally, on one line."""
    text = " ".join(text.splitlines())
    text = _SPECIAL.sub(r"\\\1", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "&#64;")


def code(text: str) -> str:
    """A code span for hex digests and similar plain values; anything else is escaped text."""
    if re.fullmatch(r"[0-9A-Za-z._/=+:-]*", text):
        return f"`{text}`" if text else ""
    return md(text)


def _digest(digest: Digest | None) -> str:
    return "\u2014" if digest is None else f"{code(digest.sha256[:16])}\u2026 ({digest.size:,} B)"


def render(report: Report) -> bytes:
    """Render the report as GitHub-flavoured Markdown (UTF-8)."""
    verdict = report.verdict
    lines = [
        f"## {ICONS[verdict]} reprover {md(report.command)}: {verdict.value.upper()}",
        "",
        md(facts.verdict_sentence(report)),
        "",
    ]
    if report.artifacts:
        lines += [
            "| Artifact | Verdict | Released | Rebuilt | Differences |",
            "| --- | --- | --- | --- | ---: |",
        ]
        for artifact in report.artifacts:
            ok = artifact_passes(artifact, strict=report.strict)
            mark = "\u2705" if ok else "\u274c"
            diffs = artifact.differences
            lines.append(
                f"| {md(artifact.path)} | {mark} {artifact.verdict.value} | "
                f"{_digest(artifact.released)} | {_digest(artifact.rebuilt)} | "
                f"{len(diffs):,} runs, {sum(d.length for d in diffs):,} B |"
            )
        lines.append("")
    if report.checks:
        lines += ["| Check | Result | Detail |", "| --- | --- | --- |"]
        for check in report.checks:
            detail = md(check.detail)
            if check.findings:
                detail += " " + " ".join(f"\u2022 {md(f)}" for f in check.findings)
            result = "\u2705 passed" if check.passed else "\u274c failed"
            lines.append(f"| {md(check.name)} | {result} | {detail} |")
        lines.append("")
    for artifact in report.artifacts:
        if artifact.differences:
            lines += _regions(artifact.path, artifact.differences)
    lines += _provenance(report)
    command, note = facts.reproduce_command(report)
    lines += ["Repeat this verification:", "", "```sh", command, "```", "", md(note), ""]
    return "\n".join(lines).encode()


def _regions(path: str, differences: tuple[Difference, ...]) -> list[str]:
    groups = facts.group_by_region(differences)
    lines = [
        f"### Differences in {md(path)}",
        "",
        "| Region | Kind | Allowed | Runs | Bytes | Offsets |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for group in groups[:MAX_REGION_ROWS]:
        allowed = (
            "yes"
            if group.all_allowed
            else "**no**"
            if not group.allowed_runs
            else f"{group.allowed_runs} of {group.runs}"
        )
        lines.append(
            f"| {md(group.region)} | {md(', '.join(group.kinds))} | {allowed} | {group.runs:,} | "
            f"{group.bytes:,} | `0x{group.first_offset:x}`\u2013`0x{group.last_end:x}` |"
        )
    hidden = groups[MAX_REGION_ROWS:]
    if hidden:
        lines.append(
            f"| {len(hidden):,} more regions | | | {sum(g.runs for g in hidden):,} | "
            f"{sum(g.bytes for g in hidden):,} | see the HTML or JSON report |"
        )
    return [*lines, ""]


def _provenance(report: Report) -> list[str]:
    rows = []
    if report.source is not None:
        src = report.source
        rows += [
            ("Repository", md(src.repo)),
            ("Commit", code(src.commit)),
            ("Tree", code(src.tree)),
            ("Commit signature", md(f"signed by {src.signer}") if src.signer else "not required"),
        ]
    if report.build is not None:
        build = report.build
        command = build.command if isinstance(build.command, str) else " ".join(build.command)
        rows += [
            ("Recipe", md(command)),
            ("Build path", md(build.build_path)),
            ("Isolation", md(build.isolation)),
        ]
        rows += [(f"Tool {md(k)}", md(v)) for k, v in build.toolchain.items()]
    if report.policy is not None and report.policy.allow:
        rows.append(("Policy allows", md(", ".join(report.policy.allow))))
    if report.manifest_sha256:
        rows.append(("Manifest SHA-256", code(report.manifest_sha256)))
    if not rows:
        return []
    table = ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]
    return [
        "<details><summary>Source, recipe and build</summary>",
        "",
        *table,
        "",
        "</details>",
        "",
    ]
