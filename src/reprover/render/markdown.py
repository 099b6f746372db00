"""The Markdown report: GitHub-flavoured tables for `$GITHUB_STEP_SUMMARY` and PR comments.

Owns: a compact summary (verdict sentence, artifacts table, checks table, differences grouped
by region, source and build, the command that repeats the run). Every string from an input is
shown inside a code span or fence it cannot close (`reprover.render.safe`), so that it renders
as text: no HTML, no links or autolinks, no mentions, no headings, no broken tables.
Does not own: verdicts (see `reprover.model`) or the shared sentences (`facts`).
"""

from __future__ import annotations

from reprover.model import Difference, Digest, Report, Verdict, artifact_passes
from reprover.render import facts
from reprover.render.safe import md_code, md_fence

MAX_REGION_ROWS = 40
MAX_CODE_ROWS = 20
ICONS = {Verdict.PASS: "\u2705", Verdict.FAIL: "\u274c", Verdict.INCONCLUSIVE: "\u26a0\ufe0f"}


def cell(text: str) -> str:
    """An input string for a table cell: a code span the string cannot close or split."""
    return md_code(text, in_table=True)


def _digest(digest: Digest | None) -> str:
    return "\u2014" if digest is None else f"`{digest.sha256[:16]}`\u2026 ({digest.size:,} B)"


def render(report: Report) -> bytes:
    """Render the report as GitHub-flavoured Markdown (UTF-8)."""
    verdict = report.verdict
    left, right = facts.sides(report)
    lines = [
        f"## {ICONS[verdict]} reprover {report.command}: {verdict.value.upper()}",
        "",
        facts.verdict_sentence(report, md_code),
        "",
    ]
    if report.strict and report.command == "verify":
        lines += ["Strict mode (`--strict`): only byte-identical artifacts pass.", ""]
    if report.artifacts:
        lines += [
            f"| Artifact | Verdict | {left.capitalize()} | {right.capitalize()} | Differences |",
            "| --- | --- | --- | --- | ---: |",
        ]
        for artifact in report.artifacts:
            ok = artifact_passes(artifact, strict=report.strict)
            mark = "\u2705" if ok else "\u274c"
            diffs = artifact.differences
            lines.append(
                f"| {cell(artifact.path)} | {mark} {artifact.verdict.value} | "
                f"{_digest(artifact.released)} | {_digest(artifact.rebuilt)} | "
                f"{facts.plural(len(diffs), 'run')}, {sum(d.length for d in diffs):,} B |"
            )
        lines.append("")
        flagged = facts.suspicious_names(report)
        if flagged:
            lines += [f"- \u26a0\ufe0f {md_code(path)}: {note}" for path, note in flagged]
            lines.append("")
    if report.checks:
        lines += ["| Check | Result | Detail |", "| --- | --- | --- |"]
        for check in report.checks:
            detail = cell(check.detail)
            if check.findings:
                detail += " " + " ".join(f"\u2022 {cell(f)}" for f in check.findings)
            result = "\u2705 passed" if check.passed else "\u274c failed"
            lines.append(f"| {cell(check.name)} | {result} | {detail} |")
        lines.append("")
    if report.log_tail:
        lines += ["Details:", "", *md_fence(report.log_tail.splitlines()), ""]
    for artifact in report.artifacts:
        if artifact.differences:
            lines += _regions(artifact.path, artifact.differences, (left, right))
    lines += _provenance(report)
    command, note = facts.reproduce_command(report)
    lines += ["Repeat this verification:", "", *md_fence([command], "sh"), "", md_code(note), ""]
    return "\n".join(lines).encode()


def _regions(path: str, differences: tuple[Difference, ...], sides: tuple[str, str]) -> list[str]:
    groups = facts.group_by_region(differences)
    lines = [
        f"### Differences in {md_code(path)}",
        "",
        f"Offsets are in the {sides[0]} file; the last column gives the first and the last "
        "differing byte.",
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
            f"| {cell(group.region)} | {', '.join(group.kinds)} | {allowed} | {group.runs:,} | "
            f"{group.bytes:,} | `0x{group.first_offset:x}`\u2013`0x{group.last_byte:x}` |"
        )
    hidden = groups[MAX_REGION_ROWS:]
    if hidden:
        lines.append(
            f"| {len(hidden):,} more regions | | | {sum(g.runs for g in hidden):,} | "
            f"{sum(g.bytes for g in hidden):,} | see the HTML or JSON report |"
        )
    return [*lines, "", *_code(differences, sides)]


def _code(differences: tuple[Difference, ...], sides: tuple[str, str]) -> list[str]:
    """The changed instructions of the first `MAX_CODE_ROWS` disassembled differences."""
    shown = [d for d in differences if d.disassembly is not None]
    if not shown:
        return []
    lines = [
        "Changed instructions:",
        "",
        f"| Offset | Symbol | {sides[0].capitalize()} | {sides[1].capitalize()} |",
        "| ---: | --- | --- | --- |",
    ]
    for diff in shown[:MAX_CODE_ROWS]:
        code = diff.disassembly
        assert code is not None  # noqa: S101 - filtered above
        before = "<br>".join(cell(x) for x in code.released) or cell(code.note or "")
        after = "<br>".join(cell(x) for x in code.rebuilt)
        symbol = cell(diff.symbol or "")
        lines.append(f"| `0x{diff.offset:x}` | {symbol} | {before} | {after} |")
    if len(shown) > MAX_CODE_ROWS:
        lines.append(f"| {len(shown) - MAX_CODE_ROWS} more | | see the HTML or JSON report | |")
    return [*lines, ""]


def _provenance(report: Report) -> list[str]:
    rows = []
    if report.source is not None:
        src = report.source
        rows += [
            ("Repository", cell(src.repo)),
            ("Commit", cell(src.commit)),
            ("Tree", cell(src.tree)),
            ("Commit signature", f"signed by {cell(src.signer)}" if src.signer else "not required"),
        ]
    if report.build is not None:
        build = report.build
        command = build.command if isinstance(build.command, str) else " ".join(build.command)
        rows += [
            ("Recipe", cell(command)),
            ("Build path", cell(build.build_path)),
            ("Isolation", cell(build.isolation)),
        ]
        rows += [(f"Tool {cell(k)}", cell(v)) for k, v in build.toolchain.items()]
    if report.policy is not None and report.policy.allow:
        rows.append(("Policy allows", ", ".join(cell(r) for r in report.policy.allow)))
    if report.manifest_sha256:
        rows.append(
            (
                "Manifest SHA-256 (for `verify-attestation --policy-digest`)",
                cell(report.manifest_sha256),
            )
        )
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
