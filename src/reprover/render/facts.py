"""Facts every human-facing renderer states the same way (HTML, Markdown, JUnit).

Owns: the one-sentence verdict, the command that repeats a run, and the ledger grouped by
region with counts (so that a long ledger is summarized, never silently cut).
Does not own: any markup or escaping (each renderer escapes for its own syntax) or deciding a
verdict (see `reprover.model`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    Difference,
    Report,
    Verdict,
    artifact_passes,
)

NOT_ISOLATED_PREFIX = "NOT isolated"
MANIFEST_PLACEHOLDER = "reprover.toml"


@dataclass(frozen=True)
class RegionGroup:
    """All differing runs of one artifact that share a region label."""

    region: str
    context: tuple[str, ...]
    kinds: tuple[str, ...]
    runs: int
    bytes: int
    allowed_runs: int
    root_runs: int
    rules: tuple[str, ...]
    first_offset: int
    last_end: int

    @property
    def all_allowed(self) -> bool:
        """Whether every run in this region is allowed by the policy."""
        return self.allowed_runs == self.runs


def group_by_region(differences: tuple[Difference, ...]) -> list[RegionGroup]:
    """Group differing runs by region label, in order of first appearance."""
    buckets: dict[str, list[Difference]] = {}
    for diff in differences:
        buckets.setdefault(diff.region, []).append(diff)
    groups = []
    for region, diffs in buckets.items():
        groups.append(
            RegionGroup(
                region=region,
                context=diffs[0].context,
                kinds=tuple(dict.fromkeys(d.kind.value for d in diffs)),
                runs=len(diffs),
                bytes=sum(d.length for d in diffs),
                allowed_runs=sum(1 for d in diffs if d.allowed),
                root_runs=sum(1 for d in diffs if d.cause.value == "root"),
                rules=tuple(dict.fromkeys(d.rule for d in diffs if d.rule)),
                first_offset=min(d.offset for d in diffs),
                last_end=max(d.offset + d.length for d in diffs),
            )
        )
    return groups


def failing_artifacts(report: Report) -> list[ArtifactResult]:
    """The artifacts that keep the run from passing."""
    return [a for a in report.artifacts if not artifact_passes(a, strict=report.strict)]


def verdict_counts(report: Report) -> dict[str, int]:
    """Artifacts per verdict, in the order the verdicts are declared."""
    counts = {v.value: 0 for v in ArtifactVerdict}
    for artifact in report.artifacts:
        counts[artifact.verdict.value] += 1
    return {k: n for k, n in counts.items() if n}


def plural(n: int, word: str) -> str:
    """`n word` or `n words`, with thousands separators."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _breakdown(report: Report) -> str:
    return ", ".join(f"{n} {verdict}" for verdict, n in verdict_counts(report).items())


def verdict_sentence(report: Report) -> str:
    """The whole outcome in one plain-text sentence (the caller escapes it)."""
    verdict = report.verdict
    checks = report.checks
    failed_checks = [c for c in checks if not c.passed]
    origin = f" from commit {report.source.commit[:12]}" if report.source else ""
    if verdict is Verdict.PASS:
        count = len(report.artifacts)
        sentence = (
            f"PASS: the only artifact ({_breakdown(report)}) matches"
            if count == 1
            else f"PASS: all {count} artifacts ({_breakdown(report)}) match"
        )
        sentence += f" what the source builds{origin}"
        if checks:
            sentence += (
                ", and the check passed"
                if len(checks) == 1
                else (f", and all {len(checks)} checks passed")
            )
        return sentence + "."
    if verdict is Verdict.INCONCLUSIVE:
        if not report.artifacts:
            return "INCONCLUSIVE: no released artifact was compared, so nothing was verified."
        return (
            "INCONCLUSIVE: the rebuild produced only files that were not released "
            f"({plural(len(report.artifacts), 'unexpected file')}), so nothing was verified."
        )
    parts = []
    failing = failing_artifacts(report)
    if failing:
        named = ", ".join(f"{a.path} ({a.verdict.value})" for a in failing[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        strict = " under --strict" if report.strict else ""
        parts.append(
            f"{len(failing)} of {plural(len(report.artifacts), 'artifact')} "
            f"{'does' if len(failing) == 1 else 'do'} not match{strict}: {named}{more}"
        )
    if failed_checks:
        named = ", ".join(c.name for c in failed_checks[:3])
        more = f" and {len(failed_checks) - 3} more" if len(failed_checks) > 3 else ""
        parts.append(
            f"{len(failed_checks)} of {plural(len(checks), 'check')} failed: {named}{more}"
        )
    if not report.artifacts:
        parts.append("no artifact was compared")
    return "FAIL: " + "; ".join(parts) + "."


def reproduce_command(report: Report) -> tuple[str, str]:
    """The command that repeats this run, and a note on what its placeholders stand for.

    The report records options but not the manifest's file name (only its SHA-256), so the
    command names it `reprover.toml` and the note gives the digest to check it against.
    """
    if report.command == "verify":
        argv = ["reprover", "verify", MANIFEST_PLACEHOLDER]
        if report.strict:
            argv.append("--strict")
        if report.build is not None:
            if NOT_ISOLATED_PREFIX in report.build.isolation:
                argv.append("--allow-network")
            if report.build.weak_isolation:
                argv.append("--allow-weak-isolation")
            argv += ["--build-path", report.build.build_path]
        note = f"{MANIFEST_PLACEHOLDER} is the manifest"
        if report.manifest_sha256:
            note += f" whose SHA-256 is {report.manifest_sha256}"
        return shlex.join(argv), note + "."
    if report.command == "diff":
        argv = ["reprover", "diff", "OLD", "NEW"]
        for rule in report.policy.allow if report.policy else ():
            argv += ["--allow", rule]
        return shlex.join(argv), "OLD is the released file or folder, NEW the rebuilt one."
    return shlex.join(["reprover", report.command]), "with the inputs this report names."


def sizes_note(artifact: ArtifactResult) -> str:
    """Describe a size change between released and rebuilt, or '' when sizes agree."""
    if artifact.released is None or artifact.rebuilt is None:
        return ""
    delta = artifact.rebuilt.size - artifact.released.size
    if delta == 0:
        return ""
    return f"rebuilt is {abs(delta)} bytes {'larger' if delta > 0 else 'smaller'}"
