"""The text report a person reads in a terminal.

Owns: layout of the human-readable report: verdict first, then source, build, artifacts with
their differences grouped by region, then checks. Long ledgers are summarized with counts,
never cut silently. Every string from an input is shown through `safe.visible`, and the whole
page once more, so that no byte of it can drive the terminal.
"""

from __future__ import annotations

from collections import defaultdict

from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    Difference,
    Report,
    Verdict,
    artifact_passes,
)
from reprover.render import facts
from reprover.render.safe import suspicious_note
from reprover.render.safe import visible as v

MAX_RUNS_PER_REGION = 8


def render(report: Report) -> bytes:
    """Render the report as UTF-8 text."""
    lines = [f"verdict: {report.verdict.value.upper()}  ({_one_line(report)})"]
    if report.inconclusive_reason is not None:
        lines.append(f"reason:  {v(report.inconclusive_reason)}")
    if report.verdict is not Verdict.PASS:
        lines.append(f"         {facts.verdict_sentence(report, v)}")
    if report.source is not None:
        src = report.source
        lines += [
            f"source:  {v(src.repo)}",
            f"         commit {v(src.commit)}  tree {v(src.tree)}",
        ]
        if src.signer:
            lines.append(f"         signed by {v(src.signer)}")
    if report.build is not None:
        build = report.build
        command = build.command if isinstance(build.command, str) else " ".join(build.command)
        lines.append(f"build:   {v(command)}  (in {v(build.build_path)}, {v(build.isolation)})")
        lines.extend(
            f"         {v(tool)}: {v(version)}" for tool, version in build.toolchain.items()
        )
    if report.policy is not None and report.policy.allow:
        lines.append(f"policy:  allow {', '.join(v(r) for r in report.policy.allow)}")
    if report.strict and report.command == "verify":
        lines.append("strict:  only byte-identical artifacts pass (--strict)")
    lines.append("")
    left, right = facts.sides(report)
    for artifact in report.artifacts:
        lines.extend(_artifact(artifact, report, (left, right)))
    if report.checks:
        lines.append("checks:")
        for check in report.checks:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"  [{mark}] {v(check.name)}: {v(check.detail)}")
            lines.extend(f"         - {v(finding)}" for finding in check.findings)
    if report.log_tail:
        lines += ["", *(v(line) for line in report.log_tail.splitlines())]
    command, note = facts.reproduce_command(report)
    if lines[-1]:
        lines.append("")
    lines += [f"repeat:  {v(command)}", f"         ({v(note)})"]
    text = "\n".join(lines).rstrip("\n") + "\n"
    return v(text, keep_newlines=True).encode()


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


def _artifact(artifact: ArtifactResult, report: Report, names: tuple[str, str]) -> list[str]:
    lines = [f"{artifact.verdict.value:>14}  {v(artifact.path)}"]
    if _refused_by_strict(artifact, report):
        lines.append(f"{'':16}refused by --strict (it accepts only identical)")
    flag = suspicious_note(artifact.path)
    if flag is not None:
        lines.append(f"{'':16}{flag}")
    labels = ((names[0], artifact.released), (names[1], artifact.rebuilt))
    for label, digest in labels:
        if digest is not None:
            lines.append(
                f"{'':16}{label:9}sha256:{digest.sha256}  {facts.plural(digest.size, 'byte')}"
            )
    lines.extend(f"{'':16}note: {v(note)}" for note in artifact.notes)
    if artifact.differences:
        lines.extend(_ledger(artifact.differences, names))
    lines.append("")
    return lines


def _refused_by_strict(artifact: ArtifactResult, report: Report) -> bool:
    return (
        report.command == "verify"
        and report.strict
        and artifact.verdict is not ArtifactVerdict.IDENTICAL
        and artifact_passes(artifact, strict=False)
    )


def _ledger(differences: tuple[Difference, ...], names: tuple[str, str]) -> list[str]:
    by_region: dict[str, list[Difference]] = defaultdict(list)
    for diff in differences:
        by_region[diff.region].append(diff)
    total = sum(d.length for d in differences)
    lines = [
        f"{'':16}{facts.plural(len(differences), 'differing run')}, "
        f"{facts.plural(total, 'byte')} (values shown {names[0]} -> {names[1]}):"
    ]
    for region, diffs in by_region.items():
        first = diffs[0]
        flags = [first.kind.value, first.cause.value]
        if all(d.allowed for d in diffs):
            flags.append(f"allowed by {v(first.rule)}" if first.rule else "allowed")
        size = sum(d.length for d in diffs)
        lines.append(
            f"{'':18}{v(region)}  [{', '.join(flags)}]  {facts.plural(len(diffs), 'run')}, "
            f"{facts.plural(size, 'byte')}"
        )
        for diff in diffs[:MAX_RUNS_PER_REGION]:
            where = f"0x{diff.offset:08x} +{diff.length}"
            extra = f"  {v(diff.symbol)}" if diff.symbol else ""
            extra += f"  {v(diff.detail)}" if diff.detail else ""
            lines.append(f"{'':20}{where}{extra}")
            lines += _code(diff, names)
        if len(diffs) > MAX_RUNS_PER_REGION:
            hidden = diffs[MAX_RUNS_PER_REGION:]
            lines.append(
                f"{'':20}... and {facts.plural(len(hidden), 'more run')} "
                f"({facts.plural(sum(d.length for d in hidden), 'byte')})"
                " in this region; see --format json for all"
            )
    return lines


def _code(diff: Difference, names: tuple[str, str]) -> list[str]:
    """The changed instructions of a code difference, one side after the other."""
    code = diff.disassembly
    if code is None:
        return []
    if code.note:
        return [f"{'':22}({v(code.note)})"]
    return [
        *(f"{'':22}{names[0]}: {v(line)}" for line in code.released),
        *(f"{'':22}{names[1]}: {v(line)}" for line in code.rebuilt),
    ]
