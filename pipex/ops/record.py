"""A build's record in its workspace: its event log and status (``pipex.ops.detached`` runs detach / attach / cancel over it).

On disk, next to the workspace's refs (``<store>/workspaces/<ws>/``)::

    build.ndjson   the NDJSON events of the latest build (the ``--json`` lines), flushed per event
    build.json     {"pid", "startTime", "state": "running"|"finished", "exitCode",
                    "startedAt", "finishedAt", "detached"}
    build.out      stdout/stderr of a detached build process (its one-line errors)

Why: ``attach`` must show a build from its first event and end with its exit
code whether it attaches early, late or after the end (the original pipex lost
the result of a finished build); a file replayed then followed does all three.
The log is (re)started only once the build holds the workspace lock (at
PIPELINE_START), so a second build waiting for that lock never truncates the
log of the live one. ``pid`` + ``startTime`` (clock ticks since boot) identify
the process even after pid reuse; ``cancel`` sends it SIGTERM, which stops
and removes its containers and makes it record exit code 130.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipex.events import Event, EventKind

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = [
    "BUILD_LOG",
    "BUILD_STATUS",
    "BUILD_OUT",
    "DETACHED_ENV",
    "BuildStatus",
    "BuildRecorder",
    "read_status",
    "read_events",
    "parse_event",
    "live_pid",
    "detached_owner",
]

BUILD_LOG = "build.ndjson"
BUILD_STATUS = "build.json"
BUILD_OUT = "build.out"
#: Set in the environment of a detached build process: it owns the workspace's build record from its start.
DETACHED_ENV = "PIPEX_DETACHED_BUILD"

_POLL = 0.1
READ_CHUNK = 1 << 20
MAX_EVENT_LINE = 8 << 20  # longer than any event pipex writes (a log line is cut at 1 MiB)


@dataclass(frozen=True)
class BuildStatus:
    """``build.json``: which process builds (or built) a workspace, and how it ended."""

    state: str  # "starting" | "running" | "finished"
    pid: int | None = None
    start_time: int | None = None
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    detached: bool = False

    def to_json(self) -> dict[str, Any]:
        """The on-disk document (camelCase keys)."""
        return {
            "state": self.state,
            "pid": self.pid,
            "startTime": self.start_time,
            "exitCode": self.exit_code,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "detached": self.detached,
        }

    @property
    def alive(self) -> bool:
        """True while the recorded process still runs (pid reuse does not count)."""
        from pipex.store.owners import process_alive

        return self.pid is not None and process_alive(self.pid, self.start_time)


def record_dir(store: Store, workspace: str) -> Path:
    """``workspaces/<ws>/``: where the workspace's build record lives."""
    from pipex.store.refs import check_name

    return Path(store.root) / "workspaces" / check_name(workspace, "workspace")


def read_status(store: Store, workspace: str) -> BuildStatus | None:
    """The workspace's ``build.json``, or None if no build was recorded (or it is unreadable)."""
    try:
        doc = json.loads((record_dir(store, workspace) / BUILD_STATUS).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("state") not in ("starting", "running", "finished"):
        return None
    return BuildStatus(
        state=doc["state"],
        pid=doc.get("pid"),
        start_time=doc.get("startTime"),
        exit_code=doc.get("exitCode"),
        started_at=doc.get("startedAt"),
        finished_at=doc.get("finishedAt"),
        detached=bool(doc.get("detached")),
    )


def write_status(directory: Path, status: BuildStatus) -> None:
    """Write ``build.json`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", dir=directory)
    try:
        # NOTE: rename without fsync: readers never see half a file, and a status lost
        # in a power cut costs only what attach shows; every build pays no sync for it.
        with os.fdopen(fd, "w") as handle:
            json.dump(status.to_json(), handle)
        os.replace(tmp, directory / BUILD_STATUS)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _me(detached: bool, state: str = "running") -> BuildStatus:
    from pipex.store.owners import process_start_time

    pid = os.getpid()
    return BuildStatus(state, pid, process_start_time(pid), started_at=time.time(), detached=detached)


class BuildRecorder:
    """An event sink that writes the build's record into its workspace (see the module docstring).

    Events before PIPELINE_START (a warning that the build waits for another
    one) are held back: until then the workspace's record is the live build's.
    A detached build process (``owner``) writes its status from the start.
    The record serves ``attach``; failing to write it (a read-only or full
    store) is said once on stderr and never fails the build.
    """

    def __init__(self, store: Store, workspace: str, *, owner: bool = False) -> None:
        self._dir = record_dir(store, workspace)
        self._pending: list[Event] = []
        self._log: TextIO | None = None
        self._lock = threading.Lock()
        self._status: BuildStatus | None = None
        self._broken = False
        if owner:
            self._status = _me(detached=True)
            self._guard(write_status, self._dir, self._status)

    def _guard(self, action: Callable[..., Any], *args: Any) -> None:
        if self._broken:
            return
        try:
            action(*args)
        except OSError as error:
            self._broken = True
            print(f"pipex: warning: cannot record the build in {self._dir} ({error.strerror}); pipex attach will not see it", file=sys.stderr)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._log is None:
                if event.kind is not EventKind.PIPELINE_START or self._broken:
                    if not self._broken:
                        self._pending.append(event)
                    return
                self._guard(self._open)
                if self._log is None:
                    return
            self._guard(self._write, event)

    def _write(self, event: Event) -> None:
        assert self._log is not None
        for held in self._pending:
            self._log.write(held.to_json() + "\n")
        self._pending.clear()
        self._log.write(event.to_json() + "\n")
        self._log.flush()

    def _open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self._dir / BUILD_LOG, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        if self._status is None:
            self._status = _me(detached=False)
            write_status(self._dir, self._status)

    def finish(self, exit_code: int) -> None:
        """Record how the build ended (only if this build owns the record) and close the log."""
        with self._lock:
            if self._log is not None:
                with contextlib.suppress(OSError):
                    self._log.close()
                self._log = None
            if self._status is not None:
                done = dataclasses.replace(self._status, state="finished", exit_code=exit_code, finished_at=time.time())
                self._status = None
                self._broken = False  # the exit code matters most: try even after a failed write
                self._guard(write_status, self._dir, done)


def parse_event(line: str) -> Event | None:
    """An Event from one NDJSON line, or None if the line is not one."""
    try:
        doc = json.loads(line)
        kind = EventKind(doc.pop("event"))
    except (ValueError, KeyError, TypeError):
        return None
    return Event(kind, doc.pop("step", None), doc, float(doc.pop("time", 0.0)))


def read_events(store: Store, workspace: str) -> list[Event]:
    """Every event of the workspace's latest recorded build but its log lines (empty if none was recorded)."""
    try:
        handle = open(record_dir(store, workspace) / BUILD_LOG, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return []
    events = []
    with handle:
        for line in handle:  # line by line: the log of a chatty build is large
            event = parse_event(line) if len(line) <= MAX_EVENT_LINE else None
            if event is not None and event.kind is not EventKind.STEP_LOG:
                events.append(event)
    return events


def detached_owner() -> tuple[Path, str] | None:
    """In a detached build process: (store root, workspace) whose record it owns; taken out of the env."""
    value = os.environ.pop(DETACHED_ENV, None)
    if not value:
        return None
    try:
        doc = json.loads(value)
        return Path(doc["store"]), str(doc["workspace"])
    except (ValueError, KeyError, TypeError):
        return None


def live_pid(store: Store, workspace: str) -> int | None:
    """The pid of the live process building ``workspace`` (from its record), or None."""
    status = read_status(store, workspace)
    return status.pid if status is not None and status.state != "finished" and status.alive else None
