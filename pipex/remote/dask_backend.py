"""The Dask backend: worker jobs as Dask tasks needing one ``docker`` resource (``REMOTE.md`` §2).

- ``submit``: ``client.submit(entry, job, key=…, pure=False, resources={"docker": 1})``;
  only the small JSON job and result travel through Dask, never outputs.
- ``cancel``: ``future.cancel()`` does not interrupt a running task, so the
  build also sets a ``distributed.Event`` its tasks poll; a task that sees
  it stops its container.
- Live lines: tasks publish on the topic ``pipex-<build>`` (``log_event``),
  the client subscribes.
- ``start`` refuses a scheduler without a worker offering ``docker`` and a
  worker with another pipex version; the worker plugin removes what a killed
  worker's previous life left, when its restarted life joins.

``distributed`` is imported here only, on first use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipex.errors import ClusterError
from pipex.remote.backend import BackendLost, JobDocument, LogSink, Outcome
from pipex.remote.cluster_config import ExecutorConfig

__all__ = ["DaskBackend", "DaskHandle", "cancel_topic", "log_topic", "security_for"]


def cancel_topic(build_id: str) -> str:
    """The name of the ``distributed.Event`` a build sets to cancel its tasks."""
    return f"pipex-cancel-{build_id}"


def log_topic(build_id: str) -> str:
    """The topic a build's tasks publish their steps' lines on."""
    return f"pipex-{build_id}"


def security_for(config: ExecutorConfig) -> Any:
    """The ``distributed.security.Security`` of ``config.tls`` (encryption required), or None."""
    if config.tls is None:
        return None
    from distributed.security import Security

    return Security(
        tls_ca_file=str(config.tls.ca),
        tls_client_cert=str(config.tls.cert),
        tls_client_key=str(config.tls.key),
        require_encryption=True,
    )


@dataclass
class DaskHandle:
    """A submitted job: its key, its Dask future, and an event set when the future is done."""

    key: str
    future: Any
    done: threading.Event = field(default_factory=threading.Event)


class DaskBackend:
    """Step jobs on a Dask cluster; ``entry`` (``pipex.ops.worker``'s) runs each on a worker."""

    name = "dask"

    def __init__(
        self,
        config: ExecutorConfig,
        *,
        entry: Callable[[Mapping[str, Any], str], Mapping[str, Any]],
        facts: Callable[[Mapping[str, str | None]], Mapping[str, Any]],
        plugin: Any = None,
        version: str,
        remote: Mapping[str, str | None] | None = None,
    ) -> None:
        """Nothing is contacted until ``start``.

        ``entry(job, build_id)`` runs a job on a worker; ``facts(remote)`` says what a
        worker runs (pipex version, Docker, the remote reached); ``plugin`` is a worker plugin.
        """
        self.config = config
        self._entry = entry
        self._facts = facts
        self._plugin = plugin
        self._version = version
        self._remote = dict(remote or {})
        self._client: Any = None
        self._event: Any = None
        self._capacity: int | None = None
        self._build_id = ""
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int | None:
        """The ``docker`` slots the workers offer, once started."""
        return self._capacity

    def start(self, build_id: str, logs: LogSink | None) -> None:
        """Connect and check the workers; ClusterError saying what is wrong."""
        import logging

        import distributed

        # distributed logs its own tracebacks when the scheduler goes away; the build says it in one line.
        for name in ("distributed", "distributed.client", "distributed.comm", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._build_id = build_id
        address = str(self.config.scheduler)
        security = security_for(self.config)
        if security is not None and not address.startswith("tls://"):
            msg = f"cannot reach the Dask scheduler at {address}: executor.tls is set, and encryption is required (use tls://)"
            raise ClusterError(msg)
        _probe(address, security)
        try:
            self._client = distributed.Client(address, security=security, timeout=10, set_as_default=False)
        except (OSError, TimeoutError, ValueError, RuntimeError) as error:
            msg = f"cannot reach the Dask scheduler at {address}: {str(error).splitlines()[0] or type(error).__name__}"
            raise ClusterError(msg) from None
        try:
            self._check_workers(address)
            if self._plugin is not None:
                self._client.register_plugin(self._plugin)
            self._event = distributed.Event(cancel_topic(build_id), client=self._client)
            if logs is not None:
                self._client.subscribe_topic(log_topic(build_id), lambda event: _deliver(event, logs))
        except BaseException:
            self.close()
            raise

    def _check_workers(self, address: str | None) -> None:
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        capacity = sum(int((w.get("resources") or {}).get("docker", 0)) for w in workers.values())
        if capacity < 1:
            msg = (
                f"no worker of the Dask scheduler at {address} offers the 'docker' resource; "
                f"start workers with: dask worker {address} --nthreads N --resources docker=N"
            )
            raise ClusterError(msg)
        for worker, facts in self._client.run(self._facts, self._remote).items():
            if facts.get("pipex") != self._version:
                msg = (
                    f"Dask worker {worker} runs pipex {facts.get('pipex')}, this build pipex {self._version}: "
                    "install the same pipex on every worker"
                )
                raise ClusterError(msg)
            if facts.get("docker") is not True:
                msg = f"Dask worker {worker} cannot reach a Docker engine: {facts.get('docker')}"
                raise ClusterError(msg)
            if facts.get("remote", True) is not True:
                msg = f"Dask worker {worker} cannot use the remote cache: {facts.get('remote')}"
                raise ClusterError(msg)
        self._capacity = self.config.slots or capacity

    def submit(self, key: str, job: JobDocument) -> DaskHandle:
        """Submit one worker job as a task needing one ``docker`` slot."""
        try:
            future = self._client.submit(
                self._entry, dict(job), self._build_id, key=f"pipex-{self._build_id}-{key}", pure=False, resources={"docker": 1}
            )
        except Exception as error:  # noqa: BLE001 - a client whose scheduler is gone refuses in many ways
            raise self._lost() or BackendLost(f"the Dask scheduler at {self.config.scheduler} refused the step: {error}") from None
        handle = DaskHandle(key, future)
        # Waiting threads sleep on this event, not in Dask calls (8 threads polling cost CPU the steps need).
        future.add_done_callback(lambda _: handle.done.set())
        return handle

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Outcome]:
        """The handles whose task ended within ``timeout``: its result, or BackendLost if the scheduler is gone."""
        deadline = time.monotonic() + timeout
        while not any(h.done.is_set() for h in handles) and self._lost() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            handles[0].done.wait(min(left, 0.05) if len(handles) > 1 else left)
        done: list[Outcome] = []
        lost = self._lost()
        for handle in handles:
            future = handle.future
            if lost is not None and not future.done():
                done.append((handle, lost))
                continue
            if not future.done():
                continue
            if future.status == "finished":
                done.append((handle, future.result()))
            elif future.status == "error":
                error = future.exception()
                done.append((handle, {"format": 1, "fingerprint": "", "status": "failed", "reason": _task_error(error)}))
            else:  # cancelled or lost: the scheduler forgot it
                done.append((handle, lost or BackendLost(f"the Dask scheduler at {self.config.scheduler} lost the step's task")))
        return done

    def _lost(self) -> BackendLost | None:
        status = getattr(self._client, "status", "running")
        if status in ("running", "newly-created"):
            return None
        return BackendLost(f"the Dask scheduler at {self.config.scheduler} went away ({status}); finished steps are kept")

    def cancel(self, handles: Sequence[Any]) -> None:
        """Tell running tasks to stop their containers, and cancel queued ones."""
        with self._lock:
            try:
                if self._event is not None:
                    self._event.set()
                self._client.cancel([h.future for h in handles], force=True)
            except Exception:  # noqa: BLE001 - best effort, the scheduler may be gone
                pass

    def close(self) -> None:
        """Disconnect (without waiting long for a scheduler that is gone)."""
        if self._client is None:
            return
        client, self._client = self._client, None
        try:
            client.close(timeout=3)
        except Exception:  # noqa: BLE001 - closing a client of a dead scheduler raises
            pass


def _probe(address: str, security: Any) -> None:
    """Connect once and hang up: a refused or untrusted connection is one ClusterError line, before any Client.

    (A Client whose constructor failed still tries to close in ``__del__``,
    for 20 s, printing a traceback: it is never made for a scheduler that
    does not answer.)
    """
    import asyncio

    from distributed.comm import connect

    async def once() -> None:
        args = security.get_connection_args("client") if security is not None else {}
        comm = await connect(address, timeout=10, **args)
        await comm.close()

    try:
        asyncio.run(once())
    except Exception as error:  # noqa: BLE001 - refused, timed out, TLS handshake failed: all one line
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {detail}") from None


def _deliver(event: Any, logs: LogSink) -> None:
    """A published line -> ``logs(step, stream, line)`` (malformed messages are dropped)."""
    message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
    if isinstance(message, Mapping):
        logs(str(message.get("step")), str(message.get("stream")), str(message.get("line")))


def _task_error(error: BaseException | None) -> str:
    name = type(error).__name__ if error is not None else "error"
    if name == "KilledWorker":
        return "every Dask worker that tried the step died (KilledWorker)"
    return f"the step's Dask task failed: {name}: {str(error).splitlines()[0] if str(error) else ''}"
