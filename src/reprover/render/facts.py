"""Facts every human-facing renderer states the same way (HTML, Markdown, JUnit).

Owns: the one-sentence verdict, the command that repeats a run, which side of a comparison is
which, the names to flag as suspicious, and the ledger grouped by region with counts (so that a
long ledger is summarized, never silently cut).
Does not own: any markup or escaping (each renderer quotes input strings for its own syntax with
`reprover.render.safe`) or deciding a verdict (see `reprover.model`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    Difference,
    Report,
    Verdict,
    artifact_passes,
)
from reprover.render import safe

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
    def last_byte(self) -> int:
        """The offset of the last differing byte (inclusive; `last_end` is one past it)."""
        return self.last_end - 1

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


def sides(report: Report) -> tuple[str, str]:
    """What the two sides of a comparison are called in this command (`old -> new` values)."""
    if report.command == "diff":
        return "OLD", "NEW"
    if report.command == "sign-check":
        return "SIGNED", "UNSIGNED"
    return "released", "rebuilt"


def suspicious_names(report: Report) -> list[tuple[str, str]]:
    """Each artifact name a reader could misread, with the `suspicious-name: ...` note."""
    found = []
    for artifact in report.artifacts:
        note = safe.suspicious_note(artifact.path)
        if note is not None:
            found.append((artifact.path, note))
    return found


def _breakdown(report: Report) -> str:
    return ", ".join(f"{n} {verdict}" for verdict, n in verdict_counts(report).items())


Quote = Callable[[str], str]


def verdict_sentence(report: Report, quote: Quote = str) -> str:
    """The whole outcome in one sentence in the renderer's syntax.

    Every string that came from an input (artifact paths, check names, the reason a run was
    inconclusive) goes through `quote`, which makes it safe for that syntax; the rest of the
    sentence is plain words and digits that need no escaping in any format.
    """
    verdict = report.verdict
    if verdict is Verdict.PASS:
        return _pass_sentence(report)
    if verdict is Verdict.INCONCLUSIVE:
        if report.inconclusive_reason is not None:
            return f"INCONCLUSIVE: {quote(report.inconclusive_reason)}; nothing was verified."
        if not report.artifacts:
            return "INCONCLUSIVE: no released artifact was compared, so nothing was verified."
        return (
            "INCONCLUSIVE: the rebuild produced only files that were not released "
            f"({plural(len(report.artifacts), 'unexpected file')}), so nothing was verified."
        )
    return _fail_sentence(report, quote)


def _pass_sentence(report: Report) -> str:
    count, checks = len(report.artifacts), report.checks
    if report.command == "sign-check":
        return (
            "PASS: the signed file is the unsigned file plus a valid code signature, nothing else."
        )
    subject = "file" if report.command == "diff" else "artifact"
    sentence = (
        f"PASS: the only {subject} ({_breakdown(report)}) matches"
        if count == 1
        else f"PASS: all {count} {subject}s ({_breakdown(report)}) match"
    )
    if report.command == "diff":
        sentence += " between OLD and NEW"
    else:
        origin = f" from commit {report.source.commit[:12]}" if report.source else ""
        sentence += f" what the source builds{origin}"
    if checks:
        sentence += (
            ", and the check passed"
            if len(checks) == 1
            else f", and all {len(checks)} checks passed"
        )
    return sentence + "."


def _fail_sentence(report: Report, quote: Quote) -> str:
    checks = report.checks
    failed_checks = [c for c in checks if not c.passed]
    parts = []
    failing = failing_artifacts(report)
    if failing:
        named = ", ".join(f"{quote(a.path)} ({a.verdict.value})" for a in failing[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        subject = "file" if report.command in ("diff", "sign-check") else "artifact"
        parts.append(
            f"{len(failing)} of {plural(len(report.artifacts), subject)} "
            f"{'does' if len(failing) == 1 else 'do'} not match{_strict_note(report, failing)}: "
            f"{named}{more}"
        )
    if failed_checks:
        named = ", ".join(quote(c.name) for c in failed_checks[:3])
        more = f" and {len(failed_checks) - 3} more" if len(failed_checks) > 3 else ""
        parts.append(
            f"{len(failed_checks)} of {plural(len(checks), 'check')} failed: {named}{more}"
        )
    if report.inconclusive_reason is not None:
        parts.append(f"then the run stopped: {quote(report.inconclusive_reason)}")
    if not report.artifacts:
        parts.append("no artifact was compared")
    return "FAIL: " + "; ".join(parts) + "."


def _strict_note(report: Report, failing: list[ArtifactResult]) -> str:
    """For `verify --strict`: name what only --strict refused (signature-only, equivalent)."""
    if report.command != "verify" or not report.strict:
        return ""
    refused = [a for a in failing if artifact_passes(a, strict=False)]
    if not refused:
        return " under --strict"
    return " under --strict, which accepts only byte-identical artifacts"


def reproduce_command(report: Report) -> tuple[str, str]:
    """The command that repeats this run, and a note on what its arguments stand for.

    The arguments are the inputs as this run was given them (`Report.inputs`); a report made
    without them names placeholders (`reprover.toml`, `OLD NEW`) and the note says so.
    """
    inputs = list(report.inputs)
    if report.command == "verify":
        manifest = inputs[0] if inputs else MANIFEST_PLACEHOLDER
        argv = ["reprover", "verify", *(inputs or [MANIFEST_PLACEHOLDER])]
        if report.strict:
            argv.append("--strict")
        if report.build is not None:
            if NOT_ISOLATED_PREFIX in report.build.isolation:
                argv.append("--allow-network")
            if report.build.weak_isolation:
                argv.append("--allow-weak-isolation")
            argv += ["--build-path", report.build.build_path]
        note = f"{manifest} is the manifest"
        if report.manifest_sha256:
            note += f" whose SHA-256 is {report.manifest_sha256}"
        return shlex.join(argv), note + "; run it in the folder the report was made in."
    if report.command == "diff":
        argv = ["reprover", "diff", *(inputs or ["OLD", "NEW"])]
        for rule in report.policy.allow if report.policy else ():
            argv += ["--allow", rule]
        if inputs:
            return shlex.join(argv), "Run it in the folder the report was made in."
        return shlex.join(argv), "OLD is the released file or folder, NEW the rebuilt one."
    if report.command == "sign-check":
        argv = ["reprover", "sign-check", *(inputs or ["UNSIGNED", "SIGNED"])]
        if inputs:
            return shlex.join(argv), "Run it in the folder the report was made in."
        return shlex.join(argv), "UNSIGNED is the file before signing, SIGNED the signed one."
    return shlex.join(["reprover", report.command, *inputs]), "with the inputs this report names."


def sizes_note(artifact: ArtifactResult) -> str:
    """Describe a size change between released and rebuilt, or '' when sizes agree."""
    if artifact.released is None or artifact.rebuilt is None:
        return ""
    delta = artifact.rebuilt.size - artifact.released.size
    if delta == 0:
        return ""
    return f"rebuilt is {abs(delta)} bytes {'larger' if delta > 0 else 'smaller'}"
