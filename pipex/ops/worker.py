"""``pipex worker run-job``: one step job on a cluster worker, from the remote to the remote (``REMOTE.md`` §2).

Every cluster engine ends here (Dask calls :func:`run_worker_job` in
process, SLURM runs the command). The worker:

1. opens its own persistent store (``PIPEX_WORKER_STORE``, ``{name}``
   replaced by the worker's name, else the usual store), never the engine's
   scratch directory, which Dask deletes under a dead worker's containers;
2. removes containers a previous life of this worker left (creating the
   session's executor does, by owner label);
3. answers ``cached`` without a container when the remote has the run;
4. fetches and checks the input trees, and the project's mounted paths;
5. refuses an image whose id here is not the one the build planned with
   (nothing is recorded under a fingerprint that names another image);
6. runs the step through the unchanged job runner (retries, ingest, record,
   push), with ``pipex.build`` on its containers;
7. answers a small ``JobResult``; a failed run's logs go to
   ``results/<build>/`` on the remote.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex import __version__
from pipex.engine.step_job import JobResult, JobStatus, WorkerJob
from pipex.errors import PipexError, RemoteError
from pipex.events import Event, EventKind

if TYPE_CHECKING:
    from pipex.remote.cache import RemoteCache
    from pipex.store.store import Store

__all__ = [
    "run_worker_job", "worker_store", "worker_name", "worker_remote", "remote_for", "remove_worker_leftovers", "env_without_remote", "LOG_BYTES",
]

#: A failed run's logs kept in its result document, per stream (the tail).
LOG_BYTES = 1 << 20

LogSink = Callable[[str, str, str], None]


def worker_name(engine_name: str | None = None) -> str:
    """``host/name``: who ran a step, as ``show`` and ``inspect`` print it."""
    host = socket.gethostname()
    return f"{host}/{engine_name}" if engine_name else f"{host}/{os.getpid()}"


def worker_store(engine_name: str | None = None) -> Store:
    """The worker's persistent store: ``PIPEX_WORKER_STORE`` (``{name}`` -> the worker's name), else the usual one.

    Opened once per worker process (jobs in its threads share it, as a local build's steps do).
    """
    from pipex.ops.project import open_store

    pattern = os.environ.get("PIPEX_WORKER_STORE")
    where = None
    if pattern:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (engine_name or "worker"))
        where = pattern.replace("{name}", safe)
    return _shared(("store", where), lambda: open_store(where))


_SHARED: dict[Any, Any] = {}
_SHARED_LOCK = threading.Lock()


def _shared(key: Any, make: Callable[[], Any]) -> Any:
    """One ``make()`` per key and worker process."""
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make()
        return _SHARED[key]


class _SharedExecutor:
    """The worker process's one Docker executor, lent to each job's session (closing a loan does nothing)."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)

    def remove_leftovers(self, labels: Mapping[str, str], keep: Callable[[Mapping[str, str]], bool] | None = None) -> int:
        """Once per worker process: a previous life's containers go at its first job (and when it joins)."""
        with _SHARED_LOCK:
            if _SHARED.get(("swept", tuple(sorted(labels.items())))):
                return 0
            _SHARED[("swept", tuple(sorted(labels.items())))] = True
        return int(self._executor.remove_leftovers(labels, keep))

    def close(self) -> None:
        """The executor outlives the job."""


def _executor_on_loan() -> Any:
    from pipex.ops.project import executor_factory

    return _SharedExecutor(_shared("executor", executor_factory(None)))


def remove_worker_leftovers(store: Store) -> int:
    """Remove containers of ``store`` whose starting process is gone (a killed worker's); return how many."""
    from pipex.ops.project import executor_factory
    from pipex.store.owners import container_owner_lives

    executor = executor_factory(None)()
    try:
        return executor.remove_leftovers({"pipex.store": str(store.root)}, lambda labels: container_owner_lives(labels) is not False)
    finally:
        executor.close()


def run_worker_job(
    doc: Mapping[str, Any],
    *,
    store: Store | None = None,
    cancel: threading.Event | None = None,
    logs: LogSink | None = None,
    engine_name: str | None = None,
) -> dict[str, Any]:
    """Run one worker job (a ``WorkerJob`` document) and answer its ``JobResult`` document; never raises.

    ``logs`` receives (step, stream, line) as the step prints them; ``cancel``
    stops the step's container.
    """
    started = time.monotonic()
    name = worker_name(engine_name)
    fingerprint = str(doc.get("job", {}).get("fingerprint", "")) if isinstance(doc, Mapping) else ""
    try:
        job = WorkerJob.from_dict(doc)
    except ValueError as error:
        return JobResult(fingerprint, JobStatus.FAILED, reason=str(error), worker=name).to_dict()
    if job.pipex_version != __version__:
        reason = f"worker {name} runs pipex {__version__}, the build pipex {job.pipex_version}: install one version everywhere"
        return JobResult(fingerprint, JobStatus.FAILED, reason=reason, worker=name).to_dict()
    try:
        result = _run(job, store or worker_store(engine_name), cancel or threading.Event(), logs, name)
    except PipexError as error:
        result = JobResult(job.job.fingerprint, JobStatus.FAILED, reason=str(error).splitlines()[0], worker=name)
    from dataclasses import replace

    timings = {**result.timings, "totalMs": int((time.monotonic() - started) * 1000)}
    return replace(result, timings=timings).to_dict()


def _run(wjob: WorkerJob, store: Store, cancel: threading.Event, logs: LogSink | None, name: str) -> JobResult:
    from pipex.engine.hosts import HostHasher
    from pipex.engine.job import JobRunner
    from pipex.engine.results import BuildOptions, InputUnavailable, StepInterrupted, StepOutcome
    from pipex.engine.session import BuildSession

    job = wjob.job
    step = job.step
    fingerprint = job.fingerprint
    remote = worker_remote(wjob)
    if not wjob.forced and remote.lookup(fingerprint) is not None:
        found = remote.lookup(fingerprint)
        assert found is not None
        return JobResult(fingerprint, JobStatus.CACHED, run_id=fingerprint, tree=found.output_tree, worker=name)
    session = BuildSession(
        store, wjob.workspace, executor_factory=_executor_on_loan, sink=_sink(logs), cancel=cancel,
        ephemeral=True, remote=remote,
    )
    with store.staging_dir("worker-root") as root:
        try:
            fetched = time.monotonic()
            lost = _fetch_trees(wjob, store, remote, root)
            if lost is not None:
                return lost
            fetch_ms = int((time.monotonic() - fetched) * 1000)
            here = session.image_id(step.image)
            if here != job.image_id:
                reason = (
                    f"image '{step.image}' is {here[:19]} on worker {name} but {job.image_id[:19]} where the build was "
                    f"planned: pin images by digest (name@sha256:…) so every worker runs the same one"
                )
                return JobResult(fingerprint, JobStatus.FAILED, reason=reason, worker=name)
            options = BuildOptions(concurrency=1, force=frozenset({step.id}) if wjob.forced else False, verbose=logs is not None)
            runner = JobRunner(
                session, root=root, options=options, host_hasher=HostHasher(root, None),
                labels={"pipex.build": wjob.build_id}, worker=name,
            )
            try:
                outcome = runner.execute(job)
            except StepInterrupted:
                return JobResult(fingerprint, JobStatus.FAILED, reason="cancelled", worker=name)
            except InputUnavailable as missing:
                return JobResult(fingerprint, JobStatus.INPUT_LOST, reason=missing.reason, producer=missing.producer, worker=name)
        finally:
            session.close()
    timings = {"fetchMs": fetch_ms, "stepMs": outcome.duration_ms or 0}
    if outcome.outcome is StepOutcome.FAILED:
        return _failed(wjob, store, remote, outcome.run_id, outcome.reason, outcome.exit_code, name, timings)
    assert outcome.run_id is not None
    if remote.read_only:
        msg = f"worker {name} ran the step but may not write to the remote: a worker needs write credentials"
        raise PipexError(msg)
    if outcome.outcome is StepOutcome.CACHED:
        _push_here(remote, store, outcome.run_id)  # a run this worker's store had: the remote must have it too
    record = store.read_run(outcome.run_id)
    return JobResult(
        fingerprint, JobStatus.RAN, run_id=outcome.run_id, tree=outcome.tree_id, exit_code=0, worker=name,
        bytes=record.meta.bytes, files=record.meta.files, duration_ms=record.meta.duration_ms, timings=timings,
    )


def worker_remote(wjob: WorkerJob) -> RemoteCache:
    """The build's remote, required and pushed to (this worker's own credentials)."""
    return remote_for(wjob.remote)


def remote_for(settings: Mapping[str, str | None]) -> RemoteCache:
    """The remote of ``settings`` (url, endpoint, region) as a worker uses it: required, pushed to."""
    from pipex.remote.cache import RemoteCache
    from pipex.remote.config import remote_config

    setting = {k: v for k, v in settings.items() if v is not None}
    config = remote_config({**setting, "push": "on", "required": True}, environ=env_without_remote())
    if config is None:
        msg = "the worker job names no remote"
        raise PipexError(msg)
    from pipex.remote.s3 import S3Blobs

    # A boto3 client costs ~0.2 s of CPU to make: one per remote and worker process (it is thread-safe);
    # the cache around it is the job's own (its lookups are remembered for one job only).
    from pipex.remote.cache import FormatState

    blobs = _shared(("blobs", config), lambda: S3Blobs(config))
    return RemoteCache(config, blobs, format_state=_shared(("format", config.url), FormatState))


def env_without_remote() -> dict[str, str]:
    """The environment for a job's remote: AWS settings count, PIPEX_REMOTE does not (the job names its remote)."""
    return {k: v for k, v in os.environ.items() if k != "PIPEX_REMOTE"}


def _push_here(remote: RemoteCache, store: Store, run_id: str) -> None:
    from pipex.remote.push import push_run

    try:
        push_run(remote, store, store.read_run(run_id))
    except RemoteError as error:
        msg = f"the run could not be pushed: {str(error).splitlines()[0]} (a worker needs write credentials)"
        raise PipexError(msg) from None


def _fetch_trees(wjob: WorkerJob, store: Store, remote: RemoteCache, root: Path) -> JobResult | None:
    """Pull the input trees and lay the project's mounted paths out under ``root``; INPUT_LOST if the remote lost one."""
    job = wjob.job
    for producer, tree in job.input_trees.items():
        if tree is not None and not remote.pull_tree(store, tree, f"input '{producer}'"):
            reason = f"input tree {tree} is not on the remote"
            return JobResult(job.fingerprint, JobStatus.INPUT_LOST, reason=reason, producer=producer)
    for mapping in (*job.step.mounts, *job.step.sources):
        # Every path the step mounts must be one the job ships: a job never mounts the worker's own files.
        if mapping.host not in wjob.host_trees:
            msg = f"mount '{mapping.host}' is not shipped with the job; a worker mounts only what the job brings"
            raise PipexError(msg)
    for host, shipped in wjob.host_trees.items():
        if not remote.pull_tree(store, shipped.tree, f"mount '{host}'"):
            msg = f"mount '{host}': tree {shipped.tree} is not on the remote"
            raise PipexError(msg)
        target = root / host
        if not target.resolve().is_relative_to(root.resolve()):
            msg = f"mount '{host}' leaves the project"
            raise PipexError(msg)
        store.export(shipped.tree, target.parent if shipped.file else target)
    return None


def _failed(
    wjob: WorkerJob, store: Store, remote: RemoteCache, run_id: str | None, reason: str | None,
    exit_code: int | None, name: str, timings: Mapping[str, int],
) -> JobResult:
    """A failed run's answer; its logs (tails) go to ``results/<build>/<key>.json`` for the client to record."""
    from pipex.remote.layout import result_key
    from pipex.store.runs import log_tail

    logs: dict[str, str] = {}
    tail = ""
    duration = 0
    if run_id is not None:
        record = store.read_run(run_id)
        duration = record.meta.duration_ms
        for stream in ("stdout", "stderr"):
            path = record.log(stream)
            try:
                with open(path, "rb") as handle:
                    handle.seek(max(0, path.stat().st_size - LOG_BYTES))
                    logs[stream] = base64.b64encode(handle.read()).decode("ascii")
            except OSError:
                continue
        tail = "\n".join(log_tail(record.log("stderr")) or log_tail(record.log("stdout")))
    key = result_key(wjob.build_id, f"{wjob.key}.logs")
    try:
        remote.blobs.put(key, json.dumps({"format": 1, "logs": logs}).encode())
    except RemoteError:
        key = ""  # the answer still carries the tail
    return JobResult(
        wjob.job.fingerprint, JobStatus.FAILED, run_id=run_id, exit_code=exit_code, reason=reason,
        log_tail=tail, logs_key=key or None, worker=name, duration_ms=duration, timings=dict(timings),
    )


def _sink(logs: LogSink | None) -> Callable[[Event], None]:
    def sink(event: Event) -> None:
        if logs is not None and event.kind is EventKind.STEP_LOG and event.step is not None:
            logs(event.step, str(event.data.get("stream")), str(event.data.get("line")))

    return sink
