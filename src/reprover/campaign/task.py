"""One campaign task, on both sides of the wire: what a worker runs, what the caller accepts.

Owns: `run_task` (on a Dask worker: check that the manifest and the released files are the
bytes the caller sent by digest, verify, return the report) and `accept` (on the caller: check
that the report describes exactly those bytes before it counts). Trust stays with the caller:
a task carries paths, digests and options, never a key; the caller recomputes the verdict
from the report and signs attestations itself.
Does not own: the verification (`reprover.verify`) or scheduling (`reprover.campaign.cluster`).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from reprover import manifest
from reprover.campaign.model import VERDICT_OF_CODE, CampaignResult, TaskOutcome, TaskSpec
from reprover.digest import hash_files
from reprover.errors import Error, ExitCode, InconclusiveError
from reprover.model import ArtifactVerdict, Digest, Manifest, Report, Verdict
from reprover.render import render
from reprover.verify import Options, verify
from reprover.verify.release import released_artifacts, unverified_results

VERDICT_EXIT = {
    Verdict.PASS: ExitCode.OK,
    Verdict.FAIL: ExitCode.FAIL,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}


def run_task(spec: TaskSpec, options: Options, topic: str) -> TaskOutcome:
    """On a worker: check the inputs on arrival, verify the manifest, return the outcome.

    Announces its start on the Dask event `topic` (the caller counts attempts from it). Every
    reprover error becomes an outcome with its exit code; nothing raises for the inputs' sake.
    """
    started = time.monotonic()
    worker = _announce(spec, topic)
    try:
        check_arrival(spec)
        report = verify(Path(spec.path), options)
    except Error as exc:
        return TaskOutcome(
            int(exc.exit_code), None, exc.diagnostics(), worker, time.monotonic() - started
        )
    code = int(VERDICT_EXIT[report.verdict])
    return TaskOutcome(code, report, None, worker, time.monotonic() - started)


def check_arrival(spec: TaskSpec) -> None:
    """Check that this machine sees the manifest and released files the caller hashed.

    Raises:
        InputError: the manifest or the release is now malformed or unreadable.
        InconclusiveError: a byte differs from what the caller sent (a stale copy, a file
            changed after the campaign started, or another machine's different file).
    """
    spec_now = manifest.load(Path(spec.path))
    if spec_now.sha256 != spec.manifest_sha256:
        raise InconclusiveError(
            f"the manifest here has SHA-256 {spec_now.sha256}, not the "
            f"{spec.manifest_sha256} the campaign sent",
            hint="every worker must see the same files as the machine running the campaign",
        )
    here = release_digests(spec_now)
    if here != dict(spec.released):
        changed = sorted(n for n in {*here, *spec.released} if here.get(n) != spec.released.get(n))
        raise InconclusiveError(
            f"released file(s) here differ from what the campaign sent: {', '.join(changed)}",
            hint="every worker must see the same files as the machine running the campaign",
        )


def release_digests(spec: Manifest) -> dict[str, Digest]:
    """The digest of every released file a report will name: the artifacts, and the files a
    `[[artifact]]` list leaves out (`unlisted`, which fail), so none can be dropped unseen.

    Raises:
        InputError: the release is missing, malformed or unreadable.
    """
    files = released_artifacts(spec)
    digests = hash_files(files.values())
    found = {name: digests[path] for name, path in files.items()}
    unlisted, _ = unverified_results(spec)
    found.update({r.path: r.released for r in unlisted if r.released is not None})
    return found


def accept(spec: TaskSpec, outcome: object) -> tuple[CampaignResult, Report | None]:
    """On the caller: turn a worker's outcome into a result, or refuse it.

    The verdict and exit code are recomputed from the report; a report is accepted only when
    its manifest digest and every released digest are the ones the caller sent. Anything else
    (another type, a report about other bytes, a pass without a report) is inconclusive.
    """
    if not isinstance(outcome, TaskOutcome):
        return _refused(spec, None, 0.0, "the worker returned something that is not an outcome")
    worker, seconds = str(outcome.worker) or None, float(outcome.seconds)
    if outcome.report is None:
        code = outcome.exit_code if outcome.exit_code in (2, 3) else 3
        error = str(outcome.error or "the task failed without a reason")
        return _result(spec, code, worker=worker, seconds=seconds, sha=None, error=error), None
    problem = _mismatch(spec, outcome.report)
    if problem is not None:
        return _refused(spec, worker, seconds, f"worker {worker} {problem}")
    code = int(VERDICT_EXIT[outcome.report.verdict])
    sha = hashlib.sha256(render(outcome.report, "json")).hexdigest()
    return _result(spec, code, worker=worker, seconds=seconds, sha=sha, error=None), outcome.report


def _mismatch(spec: TaskSpec, report: object) -> str | None:
    if not isinstance(report, Report) or report.command != "verify":
        return "returned something that is not a verification report"
    if report.manifest_sha256 != spec.manifest_sha256:
        return (
            f"returned a report for manifest SHA-256 {report.manifest_sha256}, "
            f"not the {spec.manifest_sha256} it was sent"
        )
    seen = {}
    for artifact in report.artifacts:
        if artifact.verdict is ArtifactVerdict.UNEXPECTED:
            continue  # a rebuilt file only: no released bytes to check
        if artifact.path in seen or artifact.released != spec.released.get(artifact.path):
            return f"returned a report for other bytes of {artifact.path} than it was sent"
        if artifact.verdict is ArtifactVerdict.IDENTICAL and artifact.rebuilt != artifact.released:
            return f"calls {artifact.path} identical to a rebuild with other bytes"
        seen[artifact.path] = artifact.released
    if report.artifacts and set(seen) != set(spec.released):
        return "returned a report that does not cover exactly the released files it was sent"
    return None


def _refused(
    spec: TaskSpec, worker: str | None, seconds: float, problem: str
) -> tuple[CampaignResult, None]:
    return _result(
        spec, 3, worker=worker, seconds=seconds, sha=None, error=f"report refused: {problem}"
    ), None


def _result(
    spec: TaskSpec,
    code: int,
    *,
    worker: str | None,
    seconds: float,
    sha: str | None,
    error: str | None,
) -> CampaignResult:
    return CampaignResult(
        index=spec.index,
        manifest=spec.manifest,
        verdict=VERDICT_OF_CODE[code],
        exit_code=code,
        worker=worker,
        seconds=seconds,
        report_sha256=sha,
        error=error,
    )


def _announce(spec: TaskSpec, topic: str) -> str:
    """Log this attempt's start to the scheduler; return this worker's address."""
    try:
        from distributed import get_worker  # noqa: PLC0415 - only on a worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "local"
    worker.log_event(topic, {"index": spec.index, "worker": worker.address})
    return str(worker.address)
