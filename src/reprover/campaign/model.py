"""The campaign's values: what a task is sent, what it returns, and the campaign report.

Owns: `TaskSpec` (one manifest and the digests the caller computed before sending it),
`TaskOutcome` (what a worker returns), `CampaignResult` and `CampaignReport` (the summary,
schema `reprover/campaign/v1`), their JSON form, and joining shard reports (`merge`).
Does not own: running anything (`reprover.campaign.run`, `.cluster`, `.task`) or rendering
other formats (`reprover.campaign.render`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reprover.errors import ExitCode, InputError
from reprover.model import Digest, Report
from reprover.render.safe import json_safe

CAMPAIGN_SCHEMA = "reprover/campaign/v1"

#: a task's verdict when it has no report (its manifest or release is bad input)
BAD_INPUT = "bad-input"
VERDICT_OF_CODE = {0: "pass", 1: "fail", 2: BAD_INPUT, 3: "inconclusive"}


@dataclass(frozen=True)
class TaskSpec:
    """One manifest to verify, as the caller sends it to a worker.

    `manifest_sha256` and `released` are the digests the caller computed before sending: the
    worker checks them on arrival, and the caller checks the report it gets back against them.
    `index` is the manifest's place in the whole campaign (before sharding), `manifest` its
    path as the user gave it, `path` the same made absolute, `name` the file name (without
    extension) of its reports in `--reports-dir`.
    """

    index: int
    manifest: str
    path: str
    name: str
    manifest_sha256: str
    released: Mapping[str, Digest]
    build_timeout: int = 1800


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker returns: a report, or the error that stopped the verification."""

    exit_code: int
    report: Report | None
    error: str | None
    worker: str
    seconds: float


@dataclass(frozen=True)
class CampaignResult:
    """One manifest's line in the campaign report.

    `report_sha256` is the SHA-256 of the manifest's JSON report (the bytes `reprover verify`
    of that manifest alone writes), or None when it has none. `attempts` counts the workers
    that started the task (more than one: a worker was lost and the task ran again).
    """

    index: int
    manifest: str
    verdict: str
    exit_code: int
    worker: str | None
    seconds: float
    report_sha256: str | None
    attempts: int = 1
    error: str | None = None


@dataclass(frozen=True)
class CampaignReport:
    """The summary of a campaign (or of one shard of it: `shard` = (K, N))."""

    results: tuple[CampaignResult, ...]
    total: int
    scheduler: str
    shard: tuple[int, int] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    timestamp: str | None = None

    @property
    def exit_code(self) -> int:
        """The highest exit code of its manifests; an empty campaign is inconclusive."""
        if not self.results:
            return int(ExitCode.INCONCLUSIVE)
        return max(r.exit_code for r in self.results)

    @property
    def verdict(self) -> str:
        """`pass` only when every manifest passed; else the verdict of the highest code."""
        return VERDICT_OF_CODE[self.exit_code]


def summary(report: CampaignReport) -> dict[str, int]:
    """Counts of manifests per verdict."""
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    return counts


def to_dict(report: CampaignReport) -> dict[str, Any]:
    """The campaign report as JSON-ready data (see README, "Campaign report")."""
    data: dict[str, Any] = {
        "schema": CAMPAIGN_SCHEMA,
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "total": report.total,
        "scheduler": report.scheduler,
        "shard": f"{report.shard[0]}/{report.shard[1]}" if report.shard else None,
        "summary": summary(report),
        "notes": list(report.notes),
        "results": [
            {
                "index": r.index,
                "manifest": r.manifest,
                "verdict": r.verdict,
                "exit_code": r.exit_code,
                "worker": r.worker,
                "seconds": round(r.seconds, 2),
                "report_sha256": r.report_sha256,
                "attempts": r.attempts,
                "error": r.error,
            }
            for r in report.results
        ],
    }
    if report.timestamp is not None:
        data["timestamp"] = report.timestamp
    return data


def to_json(report: CampaignReport) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, a final newline."""
    return (json.dumps(json_safe(to_dict(report)), sort_keys=True, indent=2) + "\n").encode()


def from_json(data: bytes, *, origin: str) -> CampaignReport:
    """Parse a campaign report written by `to_json`, checking every field.

    Raises:
        InputError: not JSON, another schema, or a field of the wrong type or value.
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{origin}: not a JSON campaign report ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != CAMPAIGN_SCHEMA:
        raise InputError(
            f"{origin}: not a campaign report (schema must be {CAMPAIGN_SCHEMA})",
            hint="merge the JSON campaign reports of 'reprover verify --shard K/N --format json'",
        )
    shard = _field(raw, "shard", (str, type(None)), origin)
    return CampaignReport(
        results=tuple(_result(r, origin) for r in _field(raw, "results", list, origin)),
        total=_count(raw, "total", origin),
        scheduler=_field(raw, "scheduler", str, origin),
        shard=None if shard is None else parse_shard(shard),
        notes=tuple(_strings(_field(raw, "notes", list, origin), origin)),
    )


def parse_shard(value: str) -> tuple[int, int]:
    """Parse `K/N` (1 <= K <= N).

    Raises:
        InputError: not two positive integers with K <= N.
    """
    k, sep, n = value.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise InputError(f"shard {value!r} must be K/N with 1 <= K <= N, for example 2/4")
    return int(k), int(n)


def merge(reports: Sequence[CampaignReport], *, origins: Sequence[str]) -> CampaignReport:
    """Join the shard reports of one campaign into one report.

    Every shard 1..N of the same N must be present exactly once, and together they must hold
    each manifest of the campaign (index 0..total-1) exactly once: a missing shard or manifest
    is refused, so a merged report can never pass without every manifest.

    Raises:
        InputError: the reports are not the shards of one campaign, or one is missing.
    """
    if not reports:
        raise InputError("nothing to merge: name the shard reports")
    totals = {r.total for r in reports}
    counts = {r.shard[1] if r.shard else 1 for r in reports}
    if len(totals) != 1 or len(counts) != 1:
        raise InputError("these reports come from different campaigns (their sizes differ)")
    count = counts.pop()
    seen: dict[int, str] = {}
    for report, origin in zip(reports, origins, strict=True):
        k = report.shard[0] if report.shard else 1
        if k in seen:
            raise InputError(f"shard {k}/{count} given twice: {seen[k]} and {origin}")
        seen[k] = origin
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in seen]
    if missing:
        raise InputError(f"shard(s) {', '.join(missing)} missing; every shard is needed")
    results = sorted((r for rep in reports for r in rep.results), key=lambda r: r.index)
    if [r.index for r in results] != list(range(totals.pop())):
        raise InputError("the shards do not hold each manifest of the campaign exactly once")
    schedulers = sorted({r.scheduler for r in reports})
    notes = tuple(n for rep in reports for n in rep.notes)
    return CampaignReport(tuple(results), len(results), ", ".join(schedulers), None, notes)


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], origin: str) -> Any:
    value = raw.get(key)
    if key not in raw or not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise InputError(f"{origin}: field {key!r} is missing or of the wrong type")
    return value


def _count(raw: Mapping[str, Any], key: str, origin: str) -> int:
    value = _field(raw, key, int, origin)
    if value < 0:
        raise InputError(f"{origin}: field {key!r} must not be negative")
    return int(value)


def _strings(values: list[Any], origin: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise InputError(f"{origin}: notes must be strings")
    return values


def _result(raw: Any, origin: str) -> CampaignResult:
    if not isinstance(raw, dict):
        raise InputError(f"{origin}: each result must be an object")
    code = _field(raw, "exit_code", int, origin)
    verdict = _field(raw, "verdict", str, origin)
    if VERDICT_OF_CODE.get(code) != verdict:
        raise InputError(f"{origin}: result verdict {verdict!r} does not match exit code {code}")
    seconds = _field(raw, "seconds", (int, float), origin)
    return CampaignResult(
        index=_count(raw, "index", origin),
        manifest=_field(raw, "manifest", str, origin),
        verdict=verdict,
        exit_code=code,
        worker=_field(raw, "worker", (str, type(None)), origin),
        seconds=float(seconds),
        report_sha256=_field(raw, "report_sha256", (str, type(None)), origin),
        attempts=_count(raw, "attempts", origin),
        error=_field(raw, "error", (str, type(None)), origin),
    )
