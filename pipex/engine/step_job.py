"""What the planner ships to where a step runs: ``StepJob``, its worker form ``WorkerJob``, and ``JobResult``.

A ``StepJob`` is a step decided to run, content-addressed throughout. A
``WorkerJob`` adds what a cluster worker needs besides (``REMOTE.md`` §2):
the build it belongs to, the remote it shares, and the project's host paths
(mounts, sources) as store trees, pushed before the job is submitted. A
``JobResult`` is the small answer a worker sends back: outputs never travel
through the cluster engine, only through the remote cache.

All three are JSON with ``to_dict``/``from_dict`` and a format number; a
worker refuses another format (another pipex version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipex.errors import PipexError
from pipex.spec.model import Step, step_from_dict, step_to_dict

if TYPE_CHECKING:
    from pipex.engine.plan import StepPlan

__all__ = ["JOB_FORMAT", "StepJob", "HostTree", "WorkerJob", "JobStatus", "JobResult"]

JOB_FORMAT = 1


@dataclass(frozen=True)
class StepJob:
    """A step decided to run: its fingerprint and document, the image id it names, its input trees, and why.

    Content-addressed throughout, and JSON with ``to_dict``: what a cluster
    backend ships to a worker (``REMOTE.md`` §2).
    """

    step: Step
    fingerprint: str
    document: Mapping[str, Any]
    image_id: str
    input_trees: Mapping[str, str | None]
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data, versioned."""
        return {
            "format": JOB_FORMAT,
            "step": step_to_dict(self.step),
            "fingerprint": self.fingerprint,
            "document": dict(self.document),
            "imageId": self.image_id,
            "inputTrees": dict(self.input_trees),
            "reason": self.reason,
        }

    @classmethod
    def from_plan(cls, step: Step, decided: StepPlan, input_trees: Mapping[str, str | None], reason: str) -> StepJob:
        """The job of a step the planner decided to RUN with a known image (so a fingerprint)."""
        if decided.fingerprint is None or decided.document is None or decided.image_id is None:
            msg = f"step '{step.id}' has no fingerprint yet: {'; '.join(decided.reasons)}"
            raise PipexError(msg)
        return cls(step, decided.fingerprint, dict(decided.document), decided.image_id, dict(input_trees), reason)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> StepJob:
        """The job ``to_dict`` made ``doc`` of; ValueError for another format."""
        _check_format(doc, "step job")
        return cls(
            step_from_dict(doc["step"]),
            str(doc["fingerprint"]),
            dict(doc["document"]),
            str(doc["imageId"]),
            dict(doc["inputTrees"]),
            doc.get("reason"),
        )


@dataclass(frozen=True)
class HostTree:
    """A project path (a mount's or source's ``host``) as a store tree: a directory, or a file alone in one."""

    tree: str
    file: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"tree": self.tree, "file": self.file}


@dataclass(frozen=True)
class WorkerJob:
    """A step job as a cluster worker receives it (``pipex worker run-job``).

    ``remote``: the url, endpoint and region of the shared remote (the
    worker's credentials are its own). ``host_trees``: each host path the
    step mounts, keyed as the step spells it, as a tree on that remote.
    """

    job: StepJob
    build_id: str
    workspace: str
    remote: Mapping[str, str | None]
    host_trees: Mapping[str, HostTree] = field(default_factory=dict)
    forced: bool = False
    pipex_version: str = ""

    @property
    def key(self) -> str:
        """A name of this job unique within its build: the step and its fingerprint."""
        return f"{self.job.step.id}-{self.job.fingerprint[:16]}"

    def to_dict(self) -> dict[str, Any]:
        """The worker job as JSON-ready data, versioned."""
        return {
            "format": JOB_FORMAT,
            "job": self.job.to_dict(),
            "buildId": self.build_id,
            "workspace": self.workspace,
            "remote": dict(self.remote),
            "hostTrees": {host: tree.to_dict() for host, tree in self.host_trees.items()},
            "forced": self.forced,
            "pipexVersion": self.pipex_version,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> WorkerJob:
        """The worker job ``to_dict`` made ``doc`` of; ValueError for another format or a malformed one."""
        _check_format(doc, "worker job")
        try:
            return cls(
                StepJob.from_dict(doc["job"]),
                str(doc["buildId"]),
                str(doc["workspace"]),
                {str(k): (None if v is None else str(v)) for k, v in dict(doc["remote"]).items()},
                {str(h): HostTree(str(t["tree"]), bool(t.get("file"))) for h, t in dict(doc.get("hostTrees") or {}).items()},
                bool(doc.get("forced")),
                str(doc.get("pipexVersion") or ""),
            )
        except (KeyError, TypeError, AttributeError) as error:
            msg = f"malformed worker job: {error}"
            raise ValueError(msg) from None


class JobStatus:
    """How a worker ended a job (string constants: they travel as JSON)."""

    RAN = "ran"  # the step ran and succeeded; its run is on the remote
    CACHED = "cached"  # the remote had the fingerprint's run already: no container
    FAILED = "failed"  # the step (or the worker around it) failed
    INPUT_LOST = "input-lost"  # an input's object is missing on the remote: its producer must run again


@dataclass(frozen=True)
class JobResult:
    """A worker's small answer: status, run, tree, exit code, timings, log tail, and which worker."""

    fingerprint: str
    status: str
    run_id: str | None = None
    tree: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    log_tail: str | None = None
    logs_key: str | None = None  # a failed run's logs on the remote (results/<build>/…)
    worker: str | None = None
    producer: str | None = None  # INPUT_LOST: whose output is missing
    bytes: int = 0
    files: int = 0
    duration_ms: int = 0  # the step's attempts, as its run records them
    timings: Mapping[str, int] = field(default_factory=dict)  # worker-side phases, ms

    @property
    def ok(self) -> bool:
        """True if the step's run is usable (ran or cached)."""
        return self.status in (JobStatus.RAN, JobStatus.CACHED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "format": JOB_FORMAT,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "runId": self.run_id,
            "tree": self.tree,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "logTail": self.log_tail,
            "logsKey": self.logs_key,
            "worker": self.worker,
            "producer": self.producer,
            "bytes": self.bytes,
            "files": self.files,
            "durationMs": self.duration_ms,
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobResult:
        """The result ``to_dict`` made ``doc`` of; ValueError for another format or a malformed one."""
        _check_format(doc, "job result")
        try:
            return cls(
                str(doc["fingerprint"]),
                str(doc["status"]),
                doc.get("runId"),
                doc.get("tree"),
                doc.get("exitCode"),
                doc.get("reason"),
                doc.get("logTail"),
                doc.get("logsKey"),
                doc.get("worker"),
                doc.get("producer"),
                int(doc.get("bytes") or 0),
                int(doc.get("files") or 0),
                int(doc.get("durationMs") or 0),
                {str(k): int(v) for k, v in dict(doc.get("timings") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            msg = f"malformed job result: {error}"
            raise ValueError(msg) from None


def _check_format(doc: Mapping[str, Any], what: str) -> None:
    if not isinstance(doc, Mapping) or doc.get("format") != JOB_FORMAT:
        found = doc.get("format") if isinstance(doc, Mapping) else None
        msg = f"{what} format {found!r} is not {JOB_FORMAT}: the worker's pipex is another version"
        raise ValueError(msg)
