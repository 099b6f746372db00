"""The text report a person reads in a terminal.

Owns: layout of the human-readable report: verdict first, then source, build, artifacts with
their differences grouped by region, then checks. Long ledgers are summarized with counts,
never cut silently.
"""

from __future__ import annotations

from collections import defaultdict

from reprover.model import ArtifactResult, Difference, Report

MAX_RUNS_PER_REGION = 8


def render(report: Report) -> bytes:
    """Render the report as UTF-8 text."""
    lines = [f"verdict: {report.verdict.value.upper()}  ({_one_line(report)})"]
    if report.source is not None:
        src = report.source
        lines += [
            f"source:  {src.repo}",
            f"         commit {src.commit}  tree {src.tree}",
        ]
        if src.signer:
            lines.append(f"         signed by {src.signer}")
    if report.build is not None:
        build = report.build
        command = build.command if isinstance(build.command, str) else " ".join(build.command)
        lines.append(f"build:   {command}  (in {build.build_path}, {build.isolation})")
        lines.extend(f"         {tool}: {version}" for tool, version in build.toolchain.items())
    if report.policy is not None and report.policy.allow:
        lines.append(f"policy:  allow {', '.join(report.policy.allow)}")
    lines.append("")
    for artifact in report.artifacts:
        lines.extend(_artifact(artifact))
    if report.checks:
        lines.append("checks:")
        for check in report.checks:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"  [{mark}] {check.name}: {check.detail}")
            lines.extend(f"         - {finding}" for finding in check.findings)
    return ("\n".join(lines).rstrip("\n") + "\n").encode()


def _one_line(report: Report) -> str:
    counts: dict[str, int] = defaultdict(int)
    for artifact in report.artifacts:
        counts[artifact.verdict.value] += 1
    parts = [f"{n} {verdict}" for verdict, n in sorted(counts.items())]
    failed = sum(1 for c in report.checks if not c.passed)
    if report.checks:
        parts.append(f"{len(report.checks) - failed}/{len(report.checks)} checks passed")
    if report.build is not None and report.build.weak_isolation:
        parts.append("WEAK isolation")
    return ", ".join(parts) or "no artifacts"


def _artifact(artifact: ArtifactResult) -> list[str]:
    lines = [f"{artifact.verdict.value:>14}  {artifact.path}"]
    for label, digest in (("released", artifact.released), ("rebuilt", artifact.rebuilt)):
        if digest is not None:
            lines.append(f"{'':16}{label:9}sha256:{digest.sha256}  {digest.size} bytes")
    lines.extend(f"{'':16}note: {note}" for note in artifact.notes)
    if artifact.differences:
        lines.extend(_ledger(artifact.differences))
    lines.append("")
    return lines


def _ledger(differences: tuple[Difference, ...]) -> list[str]:
    by_region: dict[str, list[Difference]] = defaultdict(list)
    for diff in differences:
        by_region[diff.region].append(diff)
    total = sum(d.length for d in differences)
    lines = [f"{'':16}{len(differences)} differing runs, {total} bytes:"]
    for region, diffs in by_region.items():
        first = diffs[0]
        flags = [first.kind.value, first.cause.value]
        if all(d.allowed for d in diffs):
            flags.append(f"allowed by {first.rule}" if first.rule else "allowed")
        size = sum(d.length for d in diffs)
        lines.append(f"{'':18}{region}  [{', '.join(flags)}]  {len(diffs)} runs, {size} bytes")
        for diff in diffs[:MAX_RUNS_PER_REGION]:
            where = f"0x{diff.offset:08x} +{diff.length}"
            extra = f"  {diff.symbol}" if diff.symbol else ""
            extra += f"  {diff.detail}" if diff.detail else ""
            lines.append(f"{'':20}{where}{extra}")
        if len(diffs) > MAX_RUNS_PER_REGION:
            hidden = diffs[MAX_RUNS_PER_REGION:]
            lines.append(
                f"{'':20}... and {len(hidden)} more runs ({sum(d.length for d in hidden)} bytes)"
                " in this region; see --format json for all"
            )
    return lines
