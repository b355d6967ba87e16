"""``pipex logs --follow``: a step's output while a build runs it, then the rest from the recorded run.

While a step runs, its logs grow in the build process's staging directory
(``staging/run-<step>-<pid>.<start>-<rand>/logs/``); the run's record moves
them into ``runs/<run_id>/`` when the step ends. Following therefore tails the
staging files of the process that holds the workspace, and when they move,
reads the remainder from the run that the step's ref now names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.ops.browse import find_run, log_paths
from pipex.errors import UsageError
from pipex.ops.record import live_pid
from pipex.ops.workspaces import resolve_workspace

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["follow_logs"]

_POLL = 0.2


def _staging_logs(store: Store, pid: int, step: str) -> Path | None:
    prefix = f"run-{step}-{pid}."
    try:
        names = [n for n in os.listdir(Path(store.root) / "staging") if n.startswith(prefix)]
    except OSError:
        return None
    for name in sorted(names):
        logs = Path(store.root) / "staging" / name / "logs"
        if logs.is_dir():
            return logs
    return None


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return b""


def follow_logs(store: Store, workspace: str, step: str, stream: str = "both") -> Iterator[tuple[str, bytes]]:
    """Yield ``(stream, bytes)`` of ``step``'s logs as they grow, until the step's run is recorded.

    Without a live build of the workspace this is its latest recorded logs.
    """
    workspace = resolve_workspace(store, workspace)
    if stream not in ("stdout", "stderr", "both"):
        msg = f"unknown log stream '{stream}': use stdout, stderr or both"
        raise UsageError(msg)
    streams = ("stdout", "stderr") if stream == "both" else (stream,)
    offsets = dict.fromkeys(streams, 0)
    started = time.time()
    seen = False
    while True:
        pid = live_pid(store, workspace)
        logs = _staging_logs(store, pid, step) if pid is not None else None
        if logs is not None and all((logs / f"{s}.log").exists() or not seen for s in streams):
            seen = True
            for name in streams:
                path = logs / f"{name}.log"
                try:
                    if path.stat().st_size < offsets[name]:
                        offsets[name] = 0  # a retry: the last attempt's log was renamed aside, this one starts anew
                except OSError:
                    pass
                data = _read_from(path, offsets[name])
                if data:
                    offsets[name] += len(data)
                    yield name, data
            time.sleep(_POLL)
            continue
        if seen or pid is None:
            break
        time.sleep(_POLL)
    if seen:
        time.sleep(3 * _POLL)  # the logs moved into the run; its ref is set right after
    try:
        record = find_run(store, workspace, step)
    except Exception:
        if seen:
            return  # interrupted before its run was recorded: what was shown is all there is
        raise
    if seen and (record.meta.finished_at or 0) < started - 1:
        return
    for name, path in log_paths(record, stream):
        data = _read_from(path, offsets.get(name, 0))
        if data:
            yield name, data
