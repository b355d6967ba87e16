"""The client's half of a cluster build: a step job -> a worker job on a backend -> the run, adopted here.

``ClusterJobRunner`` replaces ``JobRunner.execute`` and keeps everything
else (reuse, failures outside a command). Per job it:

1. ships what the worker cannot have: the project's mounted paths as trees,
   and input trees this machine never pushed, onto the remote;
2. submits the worker job and waits (a Ctrl-C cancels it on the cluster);
3. while the step runs, appends the lines the worker streams to a staging
   log here, so ``pipex logs --follow`` and ``attach`` work as for a local step;
4. adopts the pushed run lazily (record and tree, no bytes), points the ref
   at it and reports ``STEP_FINISHED`` with the worker's name; a failed run is
   recorded here with the logs the worker left on the remote.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipex import __version__
from pipex.engine.job import JobRunner
from pipex.engine.results import InputUnavailable, StepInterrupted, StepOutcome, StepResult
from pipex.engine.step_job import HostTree, JobResult, JobStatus, StepJob, WorkerJob
from pipex.errors import ClusterLostError, PipexError, RemoteError
from pipex.events import Event, EventKind
from pipex.store.locks import run_lock_name
from pipex.store.runs import RunMeta, RunStatus, run_id_for

if TYPE_CHECKING:
    from pipex.engine.hosts import HostHasher
    from pipex.engine.results import BuildOptions
    from pipex.engine.session import BuildSession
    from pipex.remote.backend import StepBackend
    from pipex.remote.cache import RemoteCache
    from pipex.spec.model import Step
    from pipex.store.store import Store

__all__ = ["ClusterJobRunner", "host_tree_of"]

_POLL_SEC = 0.25


class ClusterJobRunner(JobRunner):
    """Runs a session's step jobs on ``backend``'s workers, through ``session.remote``."""

    def __init__(
        self,
        session: BuildSession,
        backend: StepBackend,
        *,
        build_id: str,
        root: Path,
        options: BuildOptions,
        host_hasher: HostHasher,
    ) -> None:
        """The session must have a remote cache: every input and output travels through it."""
        super().__init__(session, root=root, options=options, host_hasher=host_hasher)
        if session.remote is None:
            msg = f"the {backend.name} executor needs a remote cache"
            raise PipexError(msg)
        self.remote: RemoteCache = session.remote
        self.backend = backend
        self.build_id = build_id
        self._shipped: dict[str, HostTree] = {}
        self._on_remote: set[str] = set()
        self._ship_lock = threading.Lock()
        self._live: dict[str, TextIO] = {}  # step -> its staging log, while it runs on a worker
        self._live_lock = threading.Lock()

    # -- lines a worker streams -----------------------------------------------------------------

    def on_remote_log(self, step: str, stream: str, line: str) -> None:
        """A line a step printed on its worker: into its staging log, and a STEP_LOG event with ``-v``."""
        with self._live_lock:
            handle = self._live.get(f"{step}/{stream}")
            if handle is not None:
                handle.write(line + "\n")
                handle.flush()
        if self.options.verbose:
            self.session.sink(Event(EventKind.STEP_LOG, step, {"stream": stream, "line": line}))

    # -- one job --------------------------------------------------------------------------------

    def execute(self, job: StepJob) -> StepResult:
        """Ship ``job`` to the cluster and wait for its run; StepInterrupted on cancel, InputUnavailable for a lost input."""
        step = job.step
        # Like a local build: steps of one fingerprint run once (the others take its run).
        with self.store.lock(run_lock_name(job.fingerprint)):
            if not self.options.forced(step.id) and self.store.has_run(job.fingerprint):
                reused = self.reuse(step, job.fingerprint)
                assert reused is not None
                return reused
            return self._execute_on_cluster(job)

    def _execute_on_cluster(self, job: StepJob) -> StepResult:
        step = job.step
        if self.session.cancel.is_set():
            raise StepInterrupted
        try:
            shipped = WorkerJob(
                job, self.build_id, self.workspace, self.remote.config.where(), self._ship(job),
                forced=self.options.forced(step.id), pipex_version=__version__,
            )
        except RemoteError as error:
            raise PipexError(f"cannot ship the step's files to the remote: {str(error).splitlines()[0]}") from None
        with self.store.staging_dir(f"run-{step.id}") as staging:
            result = self._submit_and_wait(shipped, staging / "logs")
        return self._finish_remote(job, result)

    def _submit_and_wait(self, shipped: WorkerJob, logs: Path) -> JobResult:
        step_id = shipped.job.step.id
        logs.mkdir()
        files = {stream: open(logs / f"{stream}.log", "a", encoding="utf-8") for stream in ("stdout", "stderr")}
        with self._live_lock:
            for stream, file in files.items():
                self._live[f"{step_id}/{stream}"] = file
        try:
            try:
                submitted = self.backend.submit(shipped.key, shipped.to_dict())
            except ClusterLostError as lost:
                self.session.fatal = self.session.fatal or lost  # the cluster is gone: no step can run
                raise
            while True:
                if self.session.cancel.is_set():
                    self.backend.cancel([submitted])
                    raise StepInterrupted
                for _, answer in self.backend.wait([submitted], _POLL_SEC):
                    if isinstance(answer, ClusterLostError):
                        self.session.fatal = self.session.fatal or answer
                        raise answer
                    try:
                        return JobResult.from_dict(answer)
                    except ValueError as error:
                        return JobResult(shipped.job.fingerprint, JobStatus.FAILED, reason=str(error))
        finally:
            with self._live_lock:
                for stream, file in files.items():
                    self._live.pop(f"{step_id}/{stream}", None)
                    file.close()

    def _finish_remote(self, job: StepJob, result: JobResult) -> StepResult:
        step = job.step
        if result.status == JobStatus.INPUT_LOST:
            producer = result.producer or "?"
            raise InputUnavailable(producer, self.store.get_ref(self.workspace, producer), result.reason or "input lost")
        if not result.ok:
            return self._record_failure(job, result)
        self.remote.ask_again(job.fingerprint)  # the plan's lookup said miss
        reused = self.reuse(step, job.fingerprint, result.tree, remote=True)
        if reused is None:
            return self.fail_outside_command(step, PipexError(f"worker {result.worker} ran the step but its run is not on the remote"))
        if result.status == JobStatus.CACHED:
            return reused
        meta = self.store.read_run(job.fingerprint).meta
        data = {
            "runId": job.fingerprint, "durationMs": meta.duration_ms, "bytes": meta.bytes, "files": meta.files,
            "tree": reused.tree_id, "worker": meta.worker or result.worker, "workerTimings": dict(result.timings),
        }
        self.session.sink(Event(EventKind.STEP_FINISHED, step.id, data))
        return StepResult(step.id, StepOutcome.SUCCEEDED, job.fingerprint, reused.tree_id, duration_ms=meta.duration_ms, exit_code=0)

    def _record_failure(self, job: StepJob, result: JobResult) -> StepResult:
        """Record a run that failed on a worker here, with its logs, and report STEP_FAILED."""
        step = job.step
        now = time.time()
        run_id = run_id_for(job.fingerprint, RunStatus.FAILED, now)
        meta = RunMeta(
            step=step.id, workspace=self.workspace, status=RunStatus.FAILED, fingerprint=job.fingerprint,
            fingerprint_doc=job.document, image_ref=step.image, image_id=job.image_id, cmd=tuple(step.cmd),
            setup_cmd=tuple(step.setup.cmd) if step.setup else None, exit_code=result.exit_code,
            message=result.reason, started_at=now - result.duration_ms / 1000, finished_at=now,
            duration_ms=result.duration_ms, attempts=1, retries=step.retries, pipex_version=__version__,
            worker=result.worker,
        )
        reason = result.reason or (f"exit code {result.exit_code}" if result.exit_code is not None else "failed on the worker")
        recorded: str | None = run_id
        try:
            with self.store.staging_dir(f"failed-{step.id}") as logs:
                self._write_logs(result, logs)
                self.store.record_run(run_id, meta, logs)
            self.store.set_ref(self.workspace, step.id, run_id, kind="failed")
        except PipexError:
            recorded = None
        data: dict[str, Any] = {
            "runId": recorded, "exitCode": result.exit_code, "reason": reason, "durationMs": result.duration_ms,
            "allowFailure": step.allow_failure, "logTail": (result.log_tail or "").splitlines()[-10:],
            "logs": self._logs_hint(step), "worker": result.worker,
        }
        self.session.sink(Event(EventKind.STEP_FAILED, step.id, data))
        return StepResult(
            step.id, StepOutcome.FAILED, recorded, reason=reason, exit_code=result.exit_code,
            duration_ms=result.duration_ms, allow_failure=step.allow_failure,
        )

    def _write_logs(self, result: JobResult, logs: Path) -> None:
        """The failed run's logs from its result document on the remote (the tail only if that is gone)."""
        docs: dict[str, Any] = {}
        if result.logs_key:
            try:
                raw = self.remote.blobs.get(result.logs_key)
                docs = json.loads(raw).get("logs") or {} if raw else {}
            except (RemoteError, ValueError, AttributeError):
                docs = {}
        for stream in ("stdout", "stderr"):
            try:
                data = base64.b64decode(str(docs[stream]), validate=True) if stream in docs else b""
            except (binascii.Error, ValueError):
                data = b""
            if stream == "stderr" and not docs and result.log_tail:
                data = result.log_tail.encode() + b"\n"
            (logs / f"{stream}.log").write_bytes(data)

    # -- what a worker cannot have ---------------------------------------------------------------

    def _ship(self, job: StepJob) -> dict[str, HostTree]:
        """Push the step's input trees the remote lacks and its mounted project paths (once a build each)."""
        from pipex.remote.layout import tree_key
        from pipex.remote.push import push_tree

        step = job.step
        with self._ship_lock:
            for tree in job.input_trees.values():
                if tree is None or tree in self._on_remote:
                    continue
                if self.remote.blobs.head(tree_key(tree)) is None:
                    push_tree(self.remote, self.store, tree)
                self._on_remote.add(tree)
            shipped: dict[str, HostTree] = {}
            for mapping in (*step.mounts, *step.sources):
                if mapping.host not in self._shipped:
                    self._shipped[mapping.host] = self._ship_path(step, mapping.host)
                shipped[mapping.host] = self._shipped[mapping.host]
            return shipped

    def _ship_path(self, step: Step, host: str) -> HostTree:
        """Project path ``host`` as a tree, pushed."""
        from pipex.remote.push import push_tree

        shipped = host_tree_of(self.store, self.root / host, step.id)
        push_tree(self.remote, self.store, shipped.tree)
        return shipped


def host_tree_of(store: Store, source: Path, step_id: str) -> HostTree:
    """A copy of a project path ingested as a tree (a file: alone in a directory); the original is untouched."""
    with store.staging_dir(f"ship-{step_id}") as staging:
        copy = staging / "tree"
        is_file = source.is_file()
        try:
            if is_file:
                copy.mkdir()
                shutil.copy2(source, copy / source.name)
            else:
                shutil.copytree(source, copy, symlinks=True)
        except OSError as error:
            msg = f"step '{step_id}': cannot read {source}: {error.strerror or error}"
            raise PipexError(msg) from None
        return HostTree(store.ingest(copy).tree_id, is_file)
