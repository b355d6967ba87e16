"""What a build decided and how each step ended: StepOutcome, StepResult, BuildResult; the build's options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

__all__ = ["StepOutcome", "StepResult", "BuildResult", "BuildOptions", "StepInterrupted", "InputUnavailable"]


class StepOutcome(str, Enum):
    """How a step ended in this build."""

    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    """The end of one step in one build.

    ``tree_id`` is the output tree dependants see: set for succeeded and cached
    steps, and for failed ones whose output could be kept (``allowFailure``).
    """

    step_id: str
    outcome: StepOutcome
    run_id: str | None = None
    tree_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    allow_failure: bool = False
    source: str = "local"  # CACHED: where the run came from ("local" or "remote")


@dataclass(frozen=True)
class BuildResult:
    """Every selected step's result, in plan order."""

    workspace: str
    results: tuple[StepResult, ...]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when no step failed (allowed failures do not count) and nothing was interrupted."""
        return not self.interrupted and not any(
            r.outcome is StepOutcome.FAILED and not r.allow_failure for r in self.results
        )

    def count(self, outcome: StepOutcome) -> int:
        """How many steps ended with ``outcome``."""
        return sum(1 for r in self.results if r.outcome is outcome)


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of one build; ``force`` is True (all) or the step ids to rebuild."""

    concurrency: int = os.cpu_count() or 2
    keep_going: bool = False
    force: bool | frozenset[str] = False
    verbose: bool = False

    def forced(self, step_id: str) -> bool:
        """Whether the cache is ignored for this step."""
        return self.force is True or (isinstance(self.force, frozenset) and step_id in self.force)


class StepInterrupted(Exception):
    """Raised by ``JobRunner.execute`` when the build is being cancelled."""


class InputUnavailable(Exception):
    """Raised by ``JobRunner.execute`` when an input pulled lazily from the remote lost an object there.

    The scheduler forgets that run and runs its producer here (Bazel's
    fallback for an evicted remote blob), then the consumer again.
    """

    def __init__(self, producer: str, run_id: str | None, reason: str) -> None:
        super().__init__(reason)
        self.producer = producer
        self.run_id = run_id
        self.reason = reason
