"""A build's cluster executor: the configured backend, started for one build and closed after it.

The one place that joins a backend (``pipex.remote``) to what runs on its
workers (``pipex.ops.worker``): backends never import the worker side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipex import __version__
from pipex.errors import UsageError

if TYPE_CHECKING:
    from pipex.remote.backend import LogSink, StepBackend
    from pipex.remote.cache import RemoteCache
    from pipex.remote.cluster_config import ExecutorConfig

__all__ = ["make_backend", "started_backend", "new_build_id"]


def new_build_id() -> str:
    """A build's id on the cluster: its tasks' keys, its cancel event, its results on the remote."""
    return uuid.uuid4().hex[:16]


def make_backend(config: ExecutorConfig, remote: RemoteCache | None) -> StepBackend:
    """The backend of a non-local ``config``; UsageError without a remote (every input and output travels through it)."""
    if remote is None:
        msg = (
            f"the {config.kind} executor needs a remote cache (inputs and outputs travel through it): "
            "set remote: in .pipex.yml, PIPEX_REMOTE or --remote"
        )
        raise UsageError(msg)
    if config.kind == "dask":
        from pipex.ops.dask_worker import LeftoverPlugin, run_on_dask, worker_facts
        from pipex.remote.dask_backend import DaskBackend

        return DaskBackend(
            config, entry=run_on_dask, facts=worker_facts, plugin=LeftoverPlugin(), version=__version__,
            remote=remote.config.where(),
        )
    if config.kind == "slurm":
        from pipex.remote.slurm_backend import SlurmBackend

        return SlurmBackend(config, remote, version=__version__)
    msg = f"executor {config.kind!r} has no backend"
    raise UsageError(msg)


@contextmanager
def started_backend(backend: StepBackend, build_id: str, logs: LogSink | None) -> Iterator[StepBackend]:
    """``backend`` started for ``build_id`` (ClusterError if it cannot), closed afterwards."""
    try:
        backend.start(build_id, logs)
        yield backend
    finally:
        backend.close()
