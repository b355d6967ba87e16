"""``pipex worker fetch`` and ``pipex worker push-output``: the two halves of a step job around a pod's step container.

On Kubernetes (``pipex.remote.k8s``) the step's own image runs the command,
with no Docker and no pipex in it; an init container fetches what it reads
and a second container ingests and pushes what it wrote:

- ``fetch JOB --into DIR``: the job's input trees at ``DIR/input/<step>/``,
  the project's mounted paths at ``DIR/project/<host>`` (fetched, verified);
- ``push-output JOB --output DIR --status FILE``: waits for the step's exit
  code in ``FILE``, ingests ``DIR``, records the run and, if it succeeded,
  pushes it; the answer goes to ``results/<build>/<key>.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipex import __version__
from pipex.engine.step_job import JobResult, JobStatus, WorkerJob
from pipex.errors import PipexError, UsageError

__all__ = ["fetch_job", "push_output"]


def _load(job_file: Path) -> WorkerJob:
    try:
        return WorkerJob.from_dict(json.loads(job_file.read_text()))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read worker job {job_file}: {error}") from None


def fetch_job(job_file: Path, into: Path) -> int:
    """Lay the job's inputs and mounted paths out under ``into``; return how many trees."""
    from pipex.ops.worker import worker_store, worker_remote

    wjob = _load(job_file)
    store = worker_store()
    remote = worker_remote(wjob)
    count = 0
    for producer, tree in wjob.job.input_trees.items():
        if tree is None:
            continue
        if not remote.pull_tree(store, tree, f"input '{producer}'"):
            raise PipexError(f"input '{producer}': tree {tree} is not on the remote")
        store.export(tree, into / "input" / producer)
        count += 1
    for host, shipped in wjob.host_trees.items():
        if not remote.pull_tree(store, shipped.tree, f"mount '{host}'"):
            raise PipexError(f"mount '{host}': tree {shipped.tree} is not on the remote")
        target = into / "project" / host
        store.export(shipped.tree, target.parent if shipped.file else target)
        count += 1
    return count


def push_output(job_file: Path, output: Path, status: Path, *, wait_sec: float = 7 * 24 * 3600) -> dict[str, Any]:
    """Wait for the step's exit code, record its output as a run and push it; return the answer (also on the remote)."""
    from pipex.ops.worker import worker_name, worker_remote, worker_store
    from pipex.remote.layout import result_key
    from pipex.remote.push import push_run
    from pipex.store.runs import RunMeta, RunStatus, run_id_for

    wjob = _load(job_file)
    job, step = wjob.job, wjob.job.step
    started = time.time()
    deadline = time.monotonic() + wait_sec
    while not status.exists():
        if time.monotonic() > deadline:
            raise PipexError(f"the step wrote no exit code to {status} within {wait_sec:.0f} s")
        time.sleep(0.2)
    text = status.read_text().strip()
    exit_code = int(text) if text.lstrip("-").isdigit() else None
    ok = exit_code == 0
    store = worker_store()
    remote = worker_remote(wjob)
    ingested = store.ingest(output)
    finished = time.time()
    run_id = run_id_for(job.fingerprint, RunStatus.SUCCEEDED if ok else RunStatus.FAILED, finished)
    meta = RunMeta(
        step=step.id, workspace=wjob.workspace, status=RunStatus.SUCCEEDED if ok else RunStatus.FAILED,
        fingerprint=job.fingerprint, fingerprint_doc=job.document, image_ref=step.image, image_id=job.image_id,
        cmd=tuple(step.cmd), setup_cmd=tuple(step.setup.cmd) if step.setup else None, exit_code=exit_code,
        started_at=started, finished_at=finished, duration_ms=int((finished - started) * 1000), attempts=1,
        retries=step.retries, output_tree=ingested.tree_id, bytes=ingested.bytes, files=ingested.files,
        pipex_version=__version__, worker=worker_name(),
    )
    record = store.record_run(run_id, meta, None)
    if ok:
        push_run(remote, store, record)
    answer = JobResult(
        job.fingerprint, JobStatus.RAN if ok else JobStatus.FAILED, run_id=run_id, tree=ingested.tree_id,
        exit_code=exit_code, reason=None if ok else f"exit code {exit_code}", worker=meta.worker,
        bytes=ingested.bytes, files=ingested.files, duration_ms=meta.duration_ms,
    ).to_dict()
    remote.blobs.put(result_key(wjob.build_id, wjob.key), json.dumps(answer, sort_keys=True).encode())
    return answer
