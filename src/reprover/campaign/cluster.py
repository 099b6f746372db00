"""Running campaign tasks on Dask distributed: an embedded local cluster or an existing one.

Owns: starting a `LocalCluster` sized to the machine (every port on 127.0.0.1) or connecting to
a running scheduler, submitting one task per manifest, collecting outcomes as they finish, and
counting attempts (a worker that dies mid-task makes the scheduler run the task again
elsewhere; each attempt announces itself on a Dask event topic). A task whose workers kept
dying (Dask's `KilledWorker`) or that raised becomes an inconclusive outcome, never a lost one.
Does not own: what a task does (`reprover.campaign.task`) or what its outcome means.

Dask, not a protocol of our own: it runs the same code on a laptop and on many machines. Its
wire format is pickle, so the scheduler and the workers must be machines the caller trusts
(use Dask's TLS on a shared network); the caller still checks every report against the
digests it sent (`task.accept`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reprover.campaign.model import TaskOutcome, TaskSpec
from reprover.campaign.task import run_task
from reprover.errors import InconclusiveError
from reprover.verify import Options

if TYPE_CHECKING:
    from distributed import Client, Future

#: how often the scheduler may lose a worker running the same task before giving up on it
ALLOWED_FAILURES = 3
#: how often a task that raised (a bug, not a verdict) runs again
RETRIES = 1
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Finished:
    """One task's end: its outcome, and the workers that started it, in order."""

    spec: TaskSpec
    outcome: object  # a `TaskOutcome` unless the worker lied; `task.accept` checks it
    starts: tuple[str, ...]


@contextlib.contextmanager
def connect(
    scheduler: str | None, *, jobs: int, timeout: float = 10.0
) -> Iterator[tuple[Client, str]]:
    """Yield a Dask client and a description of where it runs; close everything afterwards.

    Without `scheduler`, starts a local cluster of `jobs` single-threaded worker processes,
    listening on 127.0.0.1 only.

    Raises:
        InconclusiveError: the scheduler cannot be reached within `timeout` seconds, or the
            local cluster does not start.
    """
    import dask  # noqa: PLC0415 - Dask loads only when a campaign runs
    from distributed import Client, LocalCluster  # noqa: PLC0415

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        if scheduler is None:
            try:
                cluster = LocalCluster(
                    n_workers=jobs,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    scheduler_port=0,
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            except (OSError, RuntimeError, TimeoutError) as exc:
                raise InconclusiveError(f"the local Dask cluster did not start: {exc}") from exc
            with cluster, Client(cluster) as client:
                yield client, f"local ({jobs} worker{'s' if jobs != 1 else ''})"
            return
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InconclusiveError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                hint="check the address (tcp://HOST:PORT) and that 'dask scheduler' runs there",
            ) from exc
        with client:
            yield client, scheduler


def run_all(
    client: Client,
    specs: Sequence[TaskSpec],
    options: Options,
    on_finished: Callable[[Finished], None],
    *,
    stall_seconds: float,
) -> list[Finished]:
    """Submit one task per spec and call `on_finished` as each ends (in finishing order).

    Returns every task's end, in the order of `specs`. A task never raises here: a task that
    raised or whose workers kept dying is an inconclusive outcome saying so. When no task has
    finished for `stall_seconds` (a hung worker, a lost answer), the remaining tasks are
    cancelled and inconclusive: a campaign always ends.
    """
    from distributed import as_completed  # noqa: PLC0415

    token = secrets.token_hex(8)
    topic = f"reprover-campaign-{token}"
    futures = {
        client.submit(
            run_task,
            spec,
            options,
            topic,
            key=f"reprover-{token}-{spec.index}",
            pure=False,
            retries=RETRIES,
        ): spec
        for spec in specs
    }
    ends: dict[int, Finished] = {}
    pending = as_completed(futures)
    last = time.monotonic()
    while not pending.is_empty():
        batch = pending.next_batch(block=False)
        if not batch:
            if time.monotonic() - last > stall_seconds:
                break
            time.sleep(POLL_SECONDS)
            continue
        last = time.monotonic()
        for future in batch:
            spec = futures[future]
            ends[spec.index] = end = Finished(
                spec, _outcome(future), _starts(client, topic, spec.index)
            )
            on_finished(end)
    for future, spec in futures.items():
        if spec.index not in ends:
            future.cancel()
            given_up = f"no task of the campaign finished for {stall_seconds:.0f} s; given up"
            ends[spec.index] = end = Finished(
                spec, TaskOutcome(3, None, given_up, "", 0.0), _starts(client, topic, spec.index)
            )
            on_finished(end)
    return [ends[spec.index] for spec in specs]


def _outcome(future: Future[object]) -> object:
    from distributed.scheduler import KilledWorker  # noqa: PLC0415

    try:
        result: object = future.result()
    except KilledWorker as exc:
        return TaskOutcome(
            3,
            None,
            f"the workers running this task died {ALLOWED_FAILURES} times; last: {exc}",
            "",
            0.0,
        )
    except Exception as exc:  # noqa: BLE001 - any task failure is this task's result, not ours
        return TaskOutcome(3, None, f"the task failed: {type(exc).__name__}: {exc}", "", 0.0)
    return result


def _starts(client: Client, topic: str, index: int) -> tuple[str, ...]:
    events = client.get_events(topic)
    return tuple(
        str(msg.get("worker"))
        for _, msg in events
        if isinstance(msg, dict) and msg.get("index") == index
    )
