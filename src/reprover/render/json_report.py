"""The JSON report (`"schema": "reprover/report/v1"`): sorted keys, no wall clock by default.

Owns: the report's JSON shape, which scripts depend on (see README, "JSON report").
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from reprover.model import REPORT_SCHEMA, ArtifactResult, Difference, Digest, Report
from reprover.render.safe import json_safe, suspicious


def to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data (also used by other renderers and attestations)."""
    data: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "command": report.command,
        "verdict": report.verdict.value,
        "strict": report.strict,
        "source": asdict(report.source) if report.source else None,
        "artifacts": [_artifact(a) for a in report.artifacts],
        "checks": [
            {"name": c.name, "passed": c.passed, "detail": c.detail, "findings": list(c.findings)}
            for c in report.checks
        ],
        "manifest_sha256": report.manifest_sha256,
        "policy": (
            {"allow": list(report.policy.allow), "sha256": report.policy_sha256}
            if report.policy is not None
            else None
        ),
        "summary": summary(report),
    }
    if report.build is not None:
        build = report.build
        data["build"] = {
            "command": build.command if isinstance(build.command, str) else list(build.command),
            "build_path": build.build_path,
            "env": dict(build.env),
            "toolchain": dict(build.toolchain),
            "network_isolated": build.network_isolated,
            "isolation": build.isolation,
            "weak_isolation": build.weak_isolation,
        }
    if report.snapshot:
        data["snapshot"] = dict(report.snapshot)
    if report.timestamp is not None:
        data["timestamp"] = report.timestamp
    if report.inputs:
        data["inputs"] = list(report.inputs)
    if report.inconclusive_reason is not None:
        data["inconclusive"] = {"reason": report.inconclusive_reason, "log_tail": report.log_tail}
    return data


def summary(report: Report) -> dict[str, int]:
    """Counts of artifacts per verdict, for a one-line summary."""
    counts: dict[str, int] = {}
    for artifact in report.artifacts:
        counts[artifact.verdict.value] = counts.get(artifact.verdict.value, 0) + 1
    return counts


def render(report: Report) -> bytes:
    """Render the report as canonical, stable JSON bytes ending in a newline.

    Strings are JSON strings (controls and non-ASCII as `\\u` escapes); a byte of a file name
    that was not UTF-8 appears as the text `\\xNN` (see `reprover.render.safe.json_safe`).
    """
    data = json_safe(to_dict(report))
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


def _digest(digest: Digest | None) -> dict[str, Any] | None:
    return None if digest is None else {"sha256": digest.sha256, "size": digest.size}


def _difference(diff: Difference) -> dict[str, Any]:
    return {
        "offset": diff.offset,
        "length": diff.length,
        "region": diff.region,
        "kind": diff.kind.value,
        "allowed": diff.allowed,
        "cause": diff.cause.value,
        "context": list(diff.context),
        "symbol": diff.symbol,
        "rule": diff.rule,
        "detail": diff.detail,
        "disassembly": None
        if diff.disassembly is None
        else {
            "released": list(diff.disassembly.released),
            "rebuilt": list(diff.disassembly.rebuilt),
            "note": diff.disassembly.note,
        },
    }


def _artifact(artifact: ArtifactResult) -> dict[str, Any]:
    return {
        "path": artifact.path,
        "verdict": artifact.verdict.value,
        "released": _digest(artifact.released),
        "rebuilt": _digest(artifact.rebuilt),
        "differences": [_difference(d) for d in artifact.differences],
        "notes": list(artifact.notes),
        "flags": [f"suspicious-name: {reason}" for reason in suspicious(artifact.path)],
    }
