"""Dask worker preload for the campaign attacks: a worker that lies about what it compared.

Loaded with `dask worker --preload tests/adversarial/lying_worker.py`, it replaces
`reprover.campaign.task.run_task` in that worker (Dask sends functions by name) with one that
verifies honestly and then returns a passing report about other bytes: every released file's
digest is replaced by the rebuilt one, every artifact marked identical. That is the report a
worker would return had it compared its own (good) copy instead of the release it was sent.
"""

from __future__ import annotations

from dataclasses import replace

from reprover.campaign import task
from reprover.campaign.model import TaskOutcome, TaskSpec
from reprover.model import ArtifactVerdict
from reprover.verify import Options

# Dask may import a preload more than once: keep the first, honest function on the module
HONEST = "honest_run_task"
if not hasattr(task, HONEST):
    setattr(task, HONEST, task.run_task)


def lying_run_task(spec: TaskSpec, options: Options, topic: str) -> TaskOutcome:
    """Verify, then forge the report into a pass for the rebuilt bytes."""
    outcome: TaskOutcome = getattr(task, HONEST)(spec, options, topic)
    if outcome.report is None:
        return outcome
    forged = tuple(
        replace(a, released=a.rebuilt, verdict=ArtifactVerdict.IDENTICAL, differences=())
        for a in outcome.report.artifacts
    )
    return replace(outcome, exit_code=0, report=replace(outcome.report, artifacts=forged))


task.run_task = lying_run_task
