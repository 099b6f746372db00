"""Compare many artifact pairs at once: one process per core, results in the order given.

Owns: running `compare_artifact` (archives opened member by member) for the pairs whose
digests differ in up to `jobs` processes. Each process has its own isolated LIEF worker
(`compare.isolation.worker`), so N cores parse N files at once, each child under the same
memory, CPU and time limits. Results come back in the order the pairs were given, so the
report is the same bytes whatever the parallelism.
Does not own: the comparison itself (`compare_artifact`), or choosing the pairs (`verify`).

Processes, not threads: labelling a ledger is Python and would serialize on the GIL. Inside a
daemonic process (a Dask worker runs its tasks in one) no child process may be started, so the
pairs are compared one after another there; a campaign spreads its tasks over the cores instead.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from reprover.compare import Judge, compare_artifact
from reprover.errors import Error, InconclusiveError, InputError
from reprover.model import ArtifactResult, Digest, Policy


@dataclass(frozen=True)
class Pair:
    """One released file, its rebuilt counterpart, and the digests of both as hashed."""

    path: str
    released: Path
    rebuilt: Path
    digests: tuple[Digest, Digest]


@dataclass(frozen=True)
class _Failure:
    """An error raised in a pool process, carried back as plain fields (errors take kwargs)."""

    bad_input: bool
    message: str
    hint: str | None
    details: str | None


Group = tuple[ArtifactResult, ...]


def compare_pairs(
    pairs: Sequence[Pair],
    policy: Policy,
    *,
    judge: Judge | None,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> list[ArtifactResult]:
    """`compare_groups`, flattened: each artifact followed by its members, in pair order.

    Raises:
        InputError, InconclusiveError: as `compare_groups`.
    """
    groups = compare_groups(pairs, policy, judge=judge, jobs=jobs, on_done=on_done)
    return [result for group in groups for result in group]


def compare_groups(
    pairs: Sequence[Pair],
    policy: Policy,
    *,
    judge: Judge | None,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
) -> list[Group]:
    """Compare every pair; one group per pair (the artifact, then its archive members), in the
    order of `pairs`.

    Identical pairs are decided here (no parsing needed); the others go to up to `jobs`
    processes. `judge` must be a module-level function (it is sent to the processes by name).
    `on_done` is called with each artifact's path as its result arrives, in order.

    Raises:
        InputError: a file cannot be read, or the policy names an unknown rule.
        InconclusiveError: a comparison process died.
    """
    differing = [p for p in pairs if p.digests[0] != p.digests[1]]
    workers = min(jobs, len(differing))
    if workers <= 1 or multiprocessing.current_process().daemon:
        return list(_in_order(pairs, (_compare(p, policy, judge) for p in pairs), on_done))
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {p.path: pool.submit(_compare_or_failure, p, policy, judge) for p in differing}
        try:
            outcomes = (
                futures[p.path].result() if p.path in futures else _compare(p, policy, judge)
                for p in pairs
            )
            return list(_in_order(pairs, outcomes, on_done))
        except BrokenProcessPool as exc:
            raise InconclusiveError(
                f"a comparison process died: {exc}", hint="run again with --jobs 1"
            ) from exc
        finally:
            for future in futures.values():
                future.cancel()


def _in_order(
    pairs: Sequence[Pair],
    outcomes: Iterator[Group | _Failure],
    on_done: Callable[[str], None] | None,
) -> Iterator[Group]:
    for pair, outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, _Failure):
            kind = InputError if outcome.bad_input else InconclusiveError
            raise kind(outcome.message, hint=outcome.hint, details=outcome.details)
        if on_done is not None:
            on_done(pair.path)
        yield outcome


def _compare(pair: Pair, policy: Policy, judge: Judge | None) -> Group:
    return compare_artifact(
        pair.path, pair.released, pair.rebuilt, policy, digests=pair.digests, judge=judge
    )


def _compare_or_failure(pair: Pair, policy: Policy, judge: Judge | None) -> Group | _Failure:
    """In a pool process: compare, or carry a reprover error back as data."""
    try:
        return _compare(pair, policy, judge)
    except Error as exc:
        return _Failure(isinstance(exc, InputError), exc.message, exc.hint, exc.details)
