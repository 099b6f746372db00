"""How a verification runs and how it reports its progress.

Owns: `Options` (what the command line adds to the manifest), `ProgressEvent` and the two
callback types the pipeline takes (`Progress` for one message a step, `Events` for structured
updates within steps), and `step`, which announces a step to both.
Does not own: showing progress to a person (`reprover.cli.progress`), the steps themselves
(`reprover.verify`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProgressEvent:
    """A structured progress update, for a live display (see `reprover.cli.progress`).

    A `message` starts a `stage` ("clone", "build", "hash", "compare", "in-toto"), with a
    `total` when its size is known (bytes for "hash", artifacts for "compare"); updates within
    the stage carry no message, `advance` (units done since the last update) and/or `detail`
    (for "build": the last line of its log). Events may arrive from several threads.
    """

    stage: str
    message: str = ""
    total: int | None = None
    advance: int = 0
    detail: str | None = None


Events = Callable[[ProgressEvent], None]


def step(progress: Progress, events: Events | None, stage: str, message: str) -> None:
    """Announce a step: its message to `progress`, and an event starting `stage` to `events`."""
    progress(message)
    if events is not None:
        events(ProgressEvent(stage, message))


@dataclass(frozen=True)
class Options:
    """How to run a verification, beyond what the manifest says."""

    strict: bool = False
    allow_network: bool = False
    build_path: Path | None = None
    keep_build: bool = False
    allow_weak_isolation: bool = False
    jobs: int = 1
