"""Builds in the background over their record: ``build --detach``, ``attach`` and ``cancel``.

The record's format and why it is shaped so are in ``pipex.ops.record``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import PipexError, UsageError
from pipex.events import EventKind
from pipex.ops.record import (
    BUILD_LOG,
    BUILD_OUT,
    DETACHED_ENV,
    MAX_EVENT_LINE,
    READ_CHUNK,
    BuildStatus,
    live_pid,
    record_dir,
    parse_event,
    read_status,
    write_status,
)
from pipex.store.locks import record_lock_name
from pipex.store.runs import log_tail

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["AttachResult", "start_detached", "attach", "cancel"]

_POLL = 0.1


# -- detach ------------------------------------------------------------------------------


def start_detached(store: Store, workspace: str, argv: Sequence[str], *, timeout: float = 15.0) -> BuildStatus:
    """Start ``pipex <argv>`` (a build without --detach) in the background, owning ``workspace``'s record.

    Refused while a live build holds the workspace. Returns once the new
    process has recorded itself (or has already finished).
    """
    # Two `build --detach` at the same moment: the lock makes the check and the
    # start one step, so the second sees the first (starting or running) and is refused.
    with store.lock(record_lock_name(workspace)):
        return _start_detached(store, workspace, argv, timeout)


def _start_detached(store: Store, workspace: str, argv: Sequence[str], timeout: float) -> BuildStatus:
    from pipex.ops.workspaces import is_building

    if is_building(store, workspace) or live_pid(store, workspace) is not None:
        msg = f"a build of workspace '{workspace}' is already running; follow it with: pipex attach {workspace}"
        raise UsageError(msg)
    directory = record_dir(store, workspace)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (BUILD_LOG, BUILD_OUT):
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
    write_status(directory, BuildStatus("starting", started_at=time.time(), detached=True))
    out = open(directory / BUILD_OUT, "wb")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipex", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, DETACHED_ENV: json.dumps({"store": str(store.root), "workspace": workspace})},
            start_new_session=True,  # the terminal's Ctrl-C is not for it
            close_fds=True,
        )
    finally:
        out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(store, workspace)
        if status is not None and status.state != "starting" and status.pid == process.pid:
            return status
        if process.poll() is not None:
            status = read_status(store, workspace)
            if status is not None and status.pid == process.pid:
                return status
            return BuildStatus("finished", process.pid, exit_code=process.returncode, detached=True)
        time.sleep(_POLL)
    return BuildStatus("starting", process.pid, detached=True)


# -- attach and cancel ---------------------------------------------------------------------




def _lines(path: Path, stop: Callable[[], bool]) -> Iterator[str]:
    """Complete lines of ``path`` from the start; follow it until ``stop()`` holds and nothing is left."""
    handle = None
    buffer = ""
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    pass
            # In chunks: a build log may be gigabytes, and memory must stay bounded.
            chunk = handle.read(READ_CHUNK) if handle is not None else ""
            if chunk:
                buffer += chunk
                *done, buffer = buffer.split("\n")
                yield from done
                if len(buffer) > MAX_EVENT_LINE:
                    buffer = ""  # not an event line pipex wrote: skip it rather than hold it
                continue
            # Decide to stop only after a read found nothing new: no line is lost.
            if stop():
                chunk = handle.read(READ_CHUNK) if handle is not None else ""
                if not chunk:
                    if buffer:
                        yield buffer
                    return
                buffer += chunk
                continue
            time.sleep(_POLL)
    finally:
        if handle is not None:
            handle.close()


@dataclass(frozen=True)
class AttachResult:
    """How an attached build ended: its exit code, and its own error lines when it ended without a summary."""

    exit_code: int
    errors: tuple[str, ...] = ()


def attach(store: Store, workspace: str, on_line: Callable[[str], None], *, starting_timeout: float = 30.0) -> AttachResult:
    """Replay the workspace's latest build log from the start, follow it until the build ends.

    ``on_line`` gets each NDJSON line. Works the same after the build finished.
    """
    directory = record_dir(store, workspace)
    status = read_status(store, workspace)
    if status is None and not (directory / BUILD_LOG).exists():
        msg = f"no build of workspace '{workspace}' was recorded; start one with: pipex build --detach -w {workspace}"
        raise UsageError(msg)
    started = time.monotonic()

    def ended() -> bool:
        current = read_status(store, workspace)
        if current is None:
            return True
        if current.state == "finished":
            return True
        if current.state == "starting":
            return time.monotonic() - started > starting_timeout
        return not current.alive

    saw_end = interrupted = failed = False
    for line in _lines(directory / BUILD_LOG, ended):
        if not line.strip():
            continue
        event = parse_event(line)
        if event is not None and event.kind in (EventKind.PIPELINE_FINISHED, EventKind.PIPELINE_FAILED):
            saw_end = True
            interrupted = bool(event.data.get("interrupted"))
            failed = event.kind is EventKind.PIPELINE_FAILED
        on_line(line)
    final = read_status(store, workspace)
    errors = tuple(log_tail(directory / BUILD_OUT)) if not saw_end else ()
    if final is not None and final.state == "finished" and final.exit_code is not None:
        return AttachResult(int(final.exit_code), errors)
    if saw_end:
        return AttachResult(130 if interrupted else 1 if failed else 0)
    if final is not None and final.state == "starting":
        return AttachResult(2, errors or ("the detached build did not start; see " + str(directory / BUILD_OUT),))
    return AttachResult(1, errors or ("the build process ended without recording its exit code (killed?)",))


def cancel(store: Store, workspace: str, *, timeout: float = 60.0) -> int:
    """Stop the live build of ``workspace`` with SIGTERM and wait for it; return its recorded exit code.

    The build removes every container it started, keeps finished steps and
    records exit code 130.
    """
    status = read_status(store, workspace)
    if status is None or status.state == "finished" or not status.alive:
        from pipex.ops.workspaces import is_building

        busy = " (a build holds it, but recorded no process: was it started through the Python API?)" if is_building(store, workspace) else ""
        msg = f"no build of workspace '{workspace}' is running{busy}"
        raise UsageError(msg)
    assert status.pid is not None
    try:
        os.kill(status.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as error:
        msg = f"cannot stop the build of workspace '{workspace}' (pid {status.pid}): {error.strerror}"
        raise PipexError(msg) from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = read_status(store, workspace)
        if current is not None and current.state == "finished" and current.pid == status.pid:
            return int(current.exit_code if current.exit_code is not None else 130)
        if not status.alive:
            return 130
        time.sleep(_POLL)
    msg = f"the build of workspace '{workspace}' (pid {status.pid}) did not stop within {timeout:.0f}s"
    raise PipexError(msg)
