"""Campaigns: verify many releases at once, on this machine's cores or on a Dask cluster.

`run()` reads like its steps:

1. plan: on the caller, load each manifest and hash its released files (a manifest that is bad
   input becomes its own result, exit 2, and is not sent);
2. send one task per manifest (paths, digests, options: never a key) to Dask workers;
3. as each task ends, accept its report only if it describes exactly the bytes sent
   (`task.accept`), and tell the caller (progress);
4. return the campaign report and each accepted per-manifest report, in manifest order.

Owns: the campaign pipeline and its report (`model`), the worker side and the caller's checks
(`task`), Dask (`cluster`), and the campaign's renderers (`render`).
Does not own: one verification (`reprover.verify`), signing attestations or writing files
(`reprover.cli`, on the caller's machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reprover import manifest
from reprover.campaign.cluster import Finished, connect, run_all
from reprover.campaign.model import CampaignReport, CampaignResult, TaskSpec
from reprover.campaign.task import accept, release_digests
from reprover.errors import Error
from reprover.model import Report
from reprover.verify import Options

__all__ = ["CampaignReport", "CampaignResult", "Outcome", "TaskSpec", "plan", "run"]


#: seconds beyond the longest build timeout that a task may take (clone, hash, compare)
STALL_GRACE = 600


@dataclass(frozen=True)
class Entry:
    """One manifest of the campaign, planned: a task to send, or a result already decided."""

    spec: TaskSpec | None
    result: CampaignResult | None


@dataclass(frozen=True)
class Outcome:
    """A finished campaign: its report, and each manifest's accepted report by index."""

    report: CampaignReport
    reports: dict[int, Report]
    specs: dict[int, TaskSpec]


def select_shard(paths: Sequence[str], shard: tuple[int, int] | None) -> list[tuple[int, str]]:
    """The (index, path) pairs of shard K of N: every N-th manifest, starting at the K-th."""
    k, n = shard or (1, 1)
    return [(i, p) for i, p in enumerate(paths) if i % n == k - 1]


def report_names(paths: Sequence[str]) -> list[str]:
    """A distinct, readable file name (without extension) for each manifest's reports.

    The manifest's stem, prefixed with its folder's name when stems repeat, and with its
    position when even that repeats. Computed over the whole campaign, so shards agree.
    """
    stems = [Path(p).stem for p in paths]
    names = [
        stem if stems.count(stem) == 1 else f"{Path(p).absolute().parent.name}-{stem}"
        for p, stem in zip(paths, stems, strict=True)
    ]
    return [
        name if names.count(name) == 1 else f"{i + 1:03d}-{name}" for i, name in enumerate(names)
    ]


def plan(paths: Sequence[str], shard: tuple[int, int] | None) -> list[Entry]:
    """Step 1: hash each selected manifest and its release on the caller."""
    names = report_names(paths)
    entries = []
    for index, path in select_shard(paths, shard):
        try:
            spec = manifest.load(Path(path))
            released = release_digests(spec)
        except Error as exc:
            bad = CampaignResult(
                index, path, "bad-input" if exc.exit_code == 2 else "inconclusive",
                int(exc.exit_code), None, 0.0, None, 0, exc.diagnostics(),
            )  # fmt: skip
            entries.append(Entry(None, bad))
            continue
        task = TaskSpec(
            index,
            path,
            str(Path(path).absolute()),
            names[index],
            spec.sha256,
            released,
            build_timeout=spec.recipe.timeout,
        )
        entries.append(Entry(task, None))
    return entries


def run(
    paths: Sequence[str],
    options: Options,
    *,
    scheduler: str | None,
    jobs: int,
    shard: tuple[int, int] | None = None,
    connect_timeout: float = 10.0,
    stall_timeout: float | None = None,
    on_result: Callable[[CampaignResult, Report | None], None] = lambda _r, _p: None,
) -> Outcome:
    """Verify every manifest in `paths` (or shard K/N of them); see the module docstring.

    `stall_timeout` (default: the longest `[build] timeout` plus `STALL_GRACE` seconds) ends
    the campaign's wait when no task has finished for that long; the tasks left are
    inconclusive. `on_result` is called on the caller as each manifest ends, with its
    accepted report (or None), so the caller can write reports and sign attestations as
    tasks finish.

    Raises:
        InconclusiveError: the scheduler cannot be reached, or the local cluster cannot start.
        Error: whatever `on_result` raises.
    """
    entries = plan(paths, shard)
    results = {e.result.index: e.result for e in entries if e.result is not None}
    for result in results.values():
        on_result(result, None)
    specs = {e.spec.index: e.spec for e in entries if e.spec is not None}
    reports: dict[int, Report] = {}
    notes: list[str] = []
    where = "local" if scheduler is None else scheduler

    def finished(end: Finished) -> None:
        result, report = accept(end.spec, end.outcome)
        result = replace(result, attempts=max(1, len(end.starts)))
        if len(end.starts) > 1:
            lost = ", ".join(end.starts[:-1])
            notes.append(
                f"{end.spec.manifest}: ran {len(end.starts)} times; the worker(s) {lost} "
                f"were lost while running it, and {end.starts[-1]} finished it"
            )
        results[result.index] = result
        if report is not None:
            reports[result.index] = report
        on_result(result, report)

    if specs:
        # a task-free campaign (every manifest bad input) needs no cluster
        task_options = replace(options, jobs=1)
        with connect(scheduler, jobs=jobs, timeout=connect_timeout) as (client, where):
            stall = stall_timeout or max(s.build_timeout for s in specs.values()) + STALL_GRACE
            run_all(client, list(specs.values()), task_options, finished, stall_seconds=stall)
    report = CampaignReport(
        results=tuple(results[i] for i in sorted(results)),
        total=len(paths),
        scheduler=where,
        shard=shard,
        notes=tuple(sorted(notes)),
    )
    return Outcome(report, reports, specs)
