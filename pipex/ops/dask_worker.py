"""What runs inside a Dask worker: the task entry, the facts ``start`` checks, the plugin that clears leftovers.

Imported by reference on the workers (pipex must be installed there, the same
version): Dask pickles these functions by name, not by value. Only a Dask
build imports this module (and ``distributed``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from pipex import __version__
from pipex.ops.worker import remove_worker_leftovers, run_worker_job, worker_store

__all__ = ["run_on_dask", "worker_facts", "LeftoverPlugin"]

_CANCEL_WAIT_SEC = 10.0


def run_on_dask(job: Mapping[str, Any], build_id: str) -> Mapping[str, Any]:
    """The Dask task of one worker job: ``run_worker_job`` with the build's cancel event and log topic."""
    from distributed import Event, get_client, get_worker

    from pipex.remote.dask_backend import cancel_topic, log_topic

    entered = time.time()
    worker = get_worker()
    name = str(worker.name)
    cancel = threading.Event()
    done = threading.Event()
    topic = log_topic(build_id)

    # future.cancel() does not stop a running task: the build sets this event instead.
    # Made here, in the task's thread, where the worker's client is known.
    event = Event(cancel_topic(build_id), client=get_client())

    def watch() -> None:
        # One long-poll at a time (the scheduler answers when the event is set), not a request a second.
        while not done.is_set():
            try:
                if event.wait(timeout=_CANCEL_WAIT_SEC):
                    cancel.set()
                    return
            except Exception:  # noqa: BLE001 - a scheduler hiccup is not a cancel: ask again
                if done.wait(1.0):
                    return

    def publish(step: str, stream: str, line: str) -> None:
        worker.log_event(topic, {"step": step, "stream": stream, "line": line})

    watcher = threading.Thread(target=watch, name="pipex-cancel-watch", daemon=True)
    watcher.start()
    try:
        answer = dict(run_worker_job(job, cancel=cancel, logs=publish, engine_name=name))
    finally:
        done.set()
    # Wall-clock times (ms) of the task on the worker: the client tells dispatch and return latency from them.
    answer["timings"] = {**answer.get("timings", {}), "startMs": int(entered * 1000), "endMs": int(time.time() * 1000)}
    return answer


def worker_facts(remote: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """What this worker runs: its pipex version, and True or why not for Docker and the build's remote.

    Reaching the remote also makes this process's S3 client, before the first step needs it.
    """
    from pipex.errors import PipexError
    from pipex.executor.docker import DockerExecutor
    from pipex.ops.worker import remote_for

    executor = DockerExecutor()
    try:
        executor.api  # noqa: B018 - connecting is the check
        docker: bool | str = True
    except PipexError as error:
        docker = str(error).splitlines()[0]
    finally:
        executor.close()
    reachable: bool | str = True
    if remote:
        try:
            remote_for(remote).check_format()
        except PipexError as error:
            reachable = str(error).splitlines()[0]
    return {"pipex": __version__, "docker": docker, "remote": reachable}


class LeftoverPlugin(WorkerPlugin):
    """A Dask worker plugin: when a worker (re)joins, remove the containers its killed previous life left."""

    name = "pipex-leftovers"

    def setup(self, worker: Any) -> None:
        """Remove this worker store's containers whose starting process is gone (best effort)."""
        from pipex.errors import PipexError

        try:
            remove_worker_leftovers(worker_store(str(worker.name)))
        except PipexError:
            pass
