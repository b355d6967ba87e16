"""The seam between a build and a cluster engine: ``StepBackend`` (``REMOTE.md`` §2).

A backend takes worker jobs (JSON documents, ``pipex.engine.step_job``)
and hands back job results (JSON documents): it never sees a store, a tree's
bytes or a container. Inputs and outputs travel through the remote cache, so
a lost worker costs only the steps it was running, and running a job twice
is harmless (its push is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pipex.errors import ClusterLostError

__all__ = ["Handle", "JobDocument", "StepBackend", "Outcome", "LogSink", "BackendLost"]

#: A worker job or a job result, as JSON-ready data.
JobDocument = Mapping[str, Any]
#: (step id, stream, line) of a step running on a worker, when the engine can stream them.
LogSink = Callable[[str, str, str], None]


class Handle(Protocol):
    """A submitted job, as its backend tracks it."""

    key: str


#: What ``wait`` answers per finished handle: the job result, or why there is none.
Outcome = tuple[Handle, "JobDocument | ClusterLostError"]


class BackendLost(ClusterLostError):
    """Raised when the backend can no longer tell what became of its jobs (the scheduler went away)."""


class StepBackend(Protocol):
    """Where step jobs execute: a cluster engine (the local executor does not go through this seam)."""

    name: str

    @property
    def capacity(self) -> int | None:
        """Slots for steps at once (the default ``-j``), once started; None if unknown."""
        ...

    def start(self, build_id: str, logs: LogSink | None) -> None:
        """Connect; check the workers have Docker and this pipex version (ClusterError otherwise)."""
        ...

    def submit(self, key: str, job: JobDocument) -> Handle:
        """Submit one worker job; ``key`` is unique within the build."""
        ...

    def wait(self, handles: Sequence[Handle], timeout: float) -> list[Outcome]:
        """The handles that finished within ``timeout`` seconds (maybe none)."""
        ...

    def cancel(self, handles: Sequence[Handle]) -> None:
        """Best effort: stop these jobs; workers stop their containers by label."""
        ...

    def close(self) -> None:
        """Disconnect."""
        ...
