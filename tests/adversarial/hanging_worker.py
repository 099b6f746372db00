"""Dask worker preload for the campaign attacks: a worker that takes a task and never answers.

Loaded with `dask worker --preload tests/adversarial/hanging_worker.py`, it replaces
`reprover.campaign.task.run_task` in that worker with one that sleeps for an hour: the
campaign must still end (`--stall-timeout`), with the task inconclusive.
"""

from __future__ import annotations

import time

from reprover.campaign import task
from reprover.campaign.model import TaskOutcome, TaskSpec
from reprover.verify import Options


def hanging_run_task(spec: TaskSpec, options: Options, topic: str) -> TaskOutcome:
    """Never answer (within any test's time)."""
    time.sleep(3600)
    raise AssertionError("unreachable")


task.run_task = hanging_run_task
