"""One step job: the fingerprint lock, attempts with backoff, ingest, the run record (RunMeta), the ref.

``StepJob`` is what the planner decided must run, content-addressed
throughout (fingerprint, image id, input trees); ``JobRunner.execute`` runs
it on the session's executor and records exactly one run. A remote cache or
a cluster backend takes a ``StepJob`` at this seam (``REMOTE.md`` §2).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping

from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

from pipex import __version__
from pipex.engine.hosts import HostHasher, changed_host_files
from pipex.engine.results import BuildOptions, InputUnavailable, StepInterrupted, StepOutcome, StepResult
from pipex.errors import PipexError, StoreError
from pipex.events import Event, EventKind
from pipex.engine.step_job import JOB_FORMAT, StepJob  # noqa: F401 (re-exported)
from pipex.spec.model import Step
from pipex.store._fs import rmtree
from pipex.store.locks import run_lock_name
from pipex.store.runs import RunMeta, RunStatus, log_tail, run_id_for

if TYPE_CHECKING:
    from pipex.engine.session import BuildSession
    from pipex.store.runs import RunRecord
    from pipex.executor.base import ExecutionResult

__all__ = ["JOB_FORMAT", "StepJob", "JobRunner", "failure_reason"]

_MAX_RETRY_DELAY_MS = 3_600_000  # backoff doubles up to an hour, as the schema documents


class JobRunner:
    """Runs step jobs of one session and records their runs; reuses runs the store already has.

    ``root`` is the directory host paths are relative to; ``host_hasher``
    re-checks the step's host paths after it ran.
    """

    def __init__(
        self,
        session: BuildSession,
        *,
        root: Path,
        options: BuildOptions,
        host_hasher: HostHasher,
        labels: Mapping[str, str] | None = None,
        worker: str | None = None,
    ) -> None:
        """Nothing runs until ``execute``.

        ``labels``: more container labels (a cluster worker's build id);
        ``worker``: who runs the steps, kept in each run's meta.
        """
        self.session = session
        self.labels = dict(labels or {})
        self.worker = worker
        self.store = session.store
        self.workspace = session.workspace
        self.root = root
        self.options = options
        self.host_hasher = host_hasher

    def reuse(self, step: Step, run_id: str, tree_id: str | None = None, *, remote: bool = False) -> StepResult | None:
        """Take an existing run as this step's result and point the workspace ref at it.

        ``remote``: the remote cache has the run; it is adopted first (record
        and tree, no object bytes). None when that proved impossible: the
        caller runs the step instead.
        """
        pulled = remote and not self.store.has_run(run_id)
        if pulled:
            cache = self.session.remote
            if cache is None or cache.adopt(self.store, run_id) is None:
                return None
        if tree_id is None:
            tree_id = self.store.read_run(run_id).output_tree
        cache = self.session.remote
        if cache is not None and cache.config.pull == "eager" and tree_id is not None:
            self.store.ensure_objects(self.store.read_tree(tree_id))  # --pull=eager: the bytes of every hit
        if self.store.get_ref(self.workspace, step.id) != run_id:
            self.store.set_ref(self.workspace, step.id, run_id)
        return StepResult(step.id, StepOutcome.CACHED, run_id=run_id, tree_id=tree_id, source="remote" if pulled else "local")

    def forget_run(self, run_id: str | None) -> None:
        """Drop a run that proved unusable (its remote lost an object) here and in the remote cache's memory."""
        if run_id is None:
            return
        with self.store.shared_lock():
            path = self.store.run_path(run_id)
            if path.is_dir():
                rmtree(self.store.retire(path))
        if self.session.remote is not None:
            self.session.remote.forget(run_id)

    def execute(self, job: StepJob) -> StepResult:
        """Run one job: wait for the same fingerprint elsewhere, then attempts, ingest, record.

        Raises StepInterrupted when the build is being cancelled meanwhile.
        """
        step = job.step
        forced = self.options.forced(step.id)
        # Two builds (even in two processes) that need one fingerprint run it once.
        with self.store.lock(run_lock_name(job.fingerprint)):
            if not forced and self.store.has_run(job.fingerprint):
                reused = self.reuse(step, job.fingerprint)
                assert reused is not None
                return reused
            if self.session.cancel.is_set():
                raise StepInterrupted
            self._fetch_inputs(job)
            with self.store.staging_dir(f"run-{step.id}") as staging:
                return self._attempts(job, staging)

    def _fetch_inputs(self, job: StepJob) -> None:
        """Fetch the objects of inputs pulled lazily from the remote; InputUnavailable if the remote lost one."""
        if self.store.fetcher is None:
            return
        from pipex.errors import RemoteObjectError

        for producer, tree_id in job.input_trees.items():
            if tree_id is None:
                continue
            try:
                self.store.ensure_objects(self.store.read_tree(tree_id))
            except RemoteObjectError as error:
                run_id = self.store.get_ref(self.workspace, producer)
                raise InputUnavailable(producer, run_id, f"remote object {error.oid} missing") from None

    def run_once(
        self, job: StepJob, output: Path, logs: Path, *, labels: Mapping[str, str] | None = None
    ) -> ExecutionResult:
        """One attempt of ``job`` into the empty ``output`` dir, logs in ``logs``; nothing is recorded.

        ``labels`` override the container's (``exec --ephemeral`` labels its container apart).
        """
        from pipex.engine.invocation import make_invocation  # a cached build never runs a step

        invocation = make_invocation(
            job,
            store=self.store,
            workspace=self.workspace,
            root=self.root,
            output=output,
            logs=logs,
            sink=self.session.sink,
            verbose=self.options.verbose,
        )
        if labels:
            invocation = dataclasses.replace(invocation, labels={**invocation.labels, **labels})
        return self.session.executor.run(invocation, self.session.cancel)

    def _attempts(self, job: StepJob, staging: Path) -> StepResult:
        step = job.step
        cancel = self.session.cancel
        output = staging / "output"
        logs = staging / "logs"
        logs.mkdir()
        started = time.time()
        result: ExecutionResult | None = None
        attempts = step.retries + 1
        attempt = 0
        for attempt in range(1, attempts + 1):
            if output.exists():
                rmtree(output)
            output.mkdir()
            if step.user or (step.cap_drop and os.geteuid() != 0):
                # A step's own user is not us, and a root without capabilities
                # (capDrop) may not write a directory of ours either: it must be
                # able to write its output. The staging dir above stays private
                # (0700), so no one else can.
                os.chmod(output, 0o777)
            if attempt > 1:
                for stream in ("stdout", "stderr"):
                    previous = logs / f"{stream}.log"
                    if previous.exists():
                        previous.rename(logs / f"attempt-{attempt - 1}.{stream}.log")
            result = self.run_once(job, output, logs, labels=self.labels)
            if result.cancelled or cancel.is_set():
                raise StepInterrupted
            if result.ok:
                break
            if attempt < attempts:
                delay_ms = min(step.retry_delay_ms * (2 ** (attempt - 1)), _MAX_RETRY_DELAY_MS)
                self.session.sink(
                    Event(
                        EventKind.STEP_RETRYING,
                        step.id,
                        {"attempt": attempt, "reason": failure_reason(result), "delayMs": delay_ms, "exitCode": result.exit_code},
                    )
                )
                if cancel.wait(delay_ms / 1000):
                    raise StepInterrupted
        assert result is not None
        return self._record(job, result, output, logs, started, attempt)

    def _record(self, job: StepJob, result: ExecutionResult, output: Path, logs: Path, started: float, attempt: int) -> StepResult:
        """Ingest the output, write the run record, set the ref and report: the end of a job that ran."""
        step = job.step
        finished = time.time()
        succeeded = result.ok
        output_error: str | None = None
        try:
            ingested = self.store.ingest(output)
        except StoreError as error:
            # The output cannot be kept (a link leaving it, a fifo, a full disk): the step
            # fails, and its logs are still recorded so `pipex logs` shows what happened.
            output_error = f"output refused: {str(error).splitlines()[0]}"
            succeeded = False
            rmtree(output)
            output.mkdir()
            ingested = self.store.ingest(output)
        status = RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED
        unstable = False
        if succeeded:
            changed = changed_host_files(self.host_hasher, job.document)
            if changed:
                # The output serves this build but must not be found under a fingerprint
                # whose host files no longer match what the step read.
                unstable = True
                message = f"step '{step.id}': {', '.join(changed[:3])} changed while it ran; its output is not cached"
                self.session.sink(Event(EventKind.WARNING, step.id, {"message": message}))
        run_id = run_id_for(job.fingerprint, status, finished, unstable=unstable)
        meta = RunMeta(
            step=step.id,
            workspace=self.workspace,
            status=status,
            fingerprint=job.fingerprint,
            fingerprint_doc=job.document,
            image_ref=step.image,
            image_id=result.image_id or job.image_id,
            cmd=tuple(step.cmd),
            setup_cmd=tuple(step.setup.cmd) if step.setup else None,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            message=output_error or result.message,
            started_at=started,
            finished_at=finished,
            duration_ms=int((finished - started) * 1000),
            attempts=attempt,
            retries=step.retries,
            output_tree=ingested.tree_id,
            bytes=ingested.bytes,
            files=ingested.files,
            pipex_version=__version__,
            worker=self.worker,
        )
        # A forced run *becomes* the step's run, even where one of its fingerprint exists.
        record = self.store.record_run(run_id, meta, logs, replace=succeeded and self.options.forced(step.id))
        if succeeded:
            self.store.set_ref(self.workspace, step.id, run_id)
            if not unstable:
                self._push(step, record)
            self.session.sink(
                Event(
                    EventKind.STEP_FINISHED,
                    step.id,
                    {"runId": run_id, "durationMs": meta.duration_ms, "bytes": ingested.bytes, "files": ingested.files, "tree": ingested.tree_id},
                )
            )
            return StepResult(step.id, StepOutcome.SUCCEEDED, run_id, ingested.tree_id, duration_ms=meta.duration_ms, exit_code=0)
        self.store.set_ref(self.workspace, step.id, run_id, kind="failed")
        reason = output_error or failure_reason(result)
        self.session.sink(
            Event(
                EventKind.STEP_FAILED,
                step.id,
                {
                    "runId": run_id,
                    "exitCode": result.exit_code,
                    "reason": reason,
                    "durationMs": meta.duration_ms,
                    "allowFailure": step.allow_failure,
                    # The error is where the step printed it: stderr, else stdout.
                    "logTail": log_tail(record.log("stderr")) or log_tail(record.log("stdout")),
                    "logs": self._logs_hint(step),
                },
            )
        )
        return StepResult(
            step.id,
            StepOutcome.FAILED,
            run_id,
            ingested.tree_id if step.allow_failure else None,
            reason=reason,
            exit_code=result.exit_code,
            duration_ms=meta.duration_ms,
            allow_failure=step.allow_failure,
        )

    def _push(self, step: Step, record: RunRecord) -> None:
        """Push a successful run to the remote cache (a failure is one warning; read-only credentials, one line)."""
        remote = self.session.remote
        if remote is None or not remote.may_push(step.id):
            return
        from pipex.errors import RemoteDeniedError, RemoteError
        from pipex.remote.push import push_run

        try:
            pushed = push_run(remote, self.store, record)
        except RemoteDeniedError as error:
            remote.denied(error)
            return
        except RemoteError as error:
            remote.failed(error)
            return
        except PipexError as error:  # the run cannot be read back (a damaged store): the build need not fail
            remote.warn(f"step '{step.id}' not pushed: {str(error).splitlines()[0]}")
            return
        if pushed.pushed:
            self.session.sink(Event(EventKind.REMOTE_PUSH, step.id, pushed.to_dict()))

    def fail_outside_command(self, step: Step, error: PipexError, fingerprint: str | None = None) -> StepResult:
        """A step that failed before or around its command (no image, engine gone): record, report, return it.

        Recorded as a failed run (best effort: the store may be what failed),
        so ``show`` and ``logs`` know about it, with its STEP_FAILED event.
        """
        reason = str(error).splitlines()[0]
        now = time.time()
        key = fingerprint or xxhash.xxh3_128_hexdigest(f"{self.workspace}/{step.id}".encode())
        run_id = run_id_for(key, RunStatus.FAILED, now)
        meta = RunMeta(
            step=step.id, workspace=self.workspace, status=RunStatus.FAILED, fingerprint=fingerprint,
            image_ref=step.image, cmd=tuple(step.cmd), exit_code=None, message=reason,
            started_at=now, finished_at=now, duration_ms=0, attempts=0, retries=step.retries,
            output_tree=None, bytes=0, files=0, pipex_version=__version__,
        )
        recorded: str | None = run_id
        try:
            self.store.record_run(run_id, meta, None)
            self.store.set_ref(self.workspace, step.id, run_id, kind="failed")
        except PipexError:
            recorded = None
        self.session.sink(
            Event(
                EventKind.STEP_FAILED,
                step.id,
                {"runId": recorded, "reason": reason, "exitCode": None, "allowFailure": step.allow_failure, "logs": self._logs_hint(step)},
            )
        )
        return StepResult(step.id, StepOutcome.FAILED, recorded, reason=reason, allow_failure=step.allow_failure)

    def _logs_hint(self, step: Step) -> str:
        return f"pipex logs {self.workspace} {step.id}"


def failure_reason(result: ExecutionResult) -> str:
    """Why an attempt failed, in a few words: the executor's message, else the exit code."""
    if result.message:
        return str(result.message)
    return f"exit code {result.exit_code}"
