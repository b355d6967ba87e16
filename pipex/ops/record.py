"""A build's record in its workspace (event log + status), and detach / attach / cancel over it.

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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipex.errors import PipexError, UsageError
from pipex.events import Event, EventKind
from pipex.store.runs import log_tail

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = [
    "BUILD_LOG",
    "BUILD_STATUS",
    "BUILD_OUT",
    "DETACHED_ENV",
    "BuildStatus",
    "BuildRecorder",
    "AttachResult",
    "read_status",
    "read_events",
    "parse_event",
    "start_detached",
    "attach",
    "cancel",
    "live_pid",
    "detached_owner",
]

BUILD_LOG = "build.ndjson"
BUILD_STATUS = "build.json"
BUILD_OUT = "build.out"
#: Set in the environment of a detached build process: it owns the workspace's build record from its start.
DETACHED_ENV = "PIPEX_DETACHED_BUILD"

_POLL = 0.1


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
        from pipex.store._fs import process_alive

        return self.pid is not None and process_alive(self.pid, self.start_time)


def _dir(store: Store, workspace: str) -> Path:
    from pipex.store.refs import check_name

    return Path(store.root) / "workspaces" / check_name(workspace, "workspace")


def read_status(store: Store, workspace: str) -> BuildStatus | None:
    """The workspace's ``build.json``, or None if no build was recorded (or it is unreadable)."""
    try:
        doc = json.loads((_dir(store, workspace) / BUILD_STATUS).read_bytes())
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


def _write_status(directory: Path, status: BuildStatus) -> None:
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
    from pipex.store._fs import process_start_time

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
        self._dir = _dir(store, workspace)
        self._pending: list[Event] = []
        self._log: TextIO | None = None
        self._lock = threading.Lock()
        self._status: BuildStatus | None = None
        self._broken = False
        if owner:
            self._status = _me(detached=True)
            self._guard(_write_status, self._dir, self._status)

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
            _write_status(self._dir, self._status)

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
                self._guard(_write_status, self._dir, done)


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
        handle = open(_dir(store, workspace) / BUILD_LOG, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return []
    events = []
    with handle:
        for line in handle:  # line by line: the log of a chatty build is large
            event = parse_event(line) if len(line) <= _MAX_LINE else None
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


# -- detach ------------------------------------------------------------------------------


def start_detached(store: Store, workspace: str, argv: Sequence[str], *, timeout: float = 15.0) -> BuildStatus:
    """Start ``pipex <argv>`` (a build without --detach) in the background, owning ``workspace``'s record.

    Refused while a live build holds the workspace. Returns once the new
    process has recorded itself (or has already finished).
    """
    # Two `build --detach` at the same moment: the lock makes the check and the
    # start one step, so the second sees the first (starting or running) and is refused.
    with store.lock(f"detach-{workspace}"):
        return _start_detached(store, workspace, argv, timeout)


def _start_detached(store: Store, workspace: str, argv: Sequence[str], timeout: float) -> BuildStatus:
    from pipex.ops.workspaces import is_building

    if is_building(store, workspace) or live_pid(store, workspace) is not None:
        msg = f"a build of workspace '{workspace}' is already running; follow it with: pipex attach {workspace}"
        raise UsageError(msg)
    directory = _dir(store, workspace)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (BUILD_LOG, BUILD_OUT):
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
    _write_status(directory, BuildStatus("starting", started_at=time.time(), detached=True))
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


_READ_CHUNK = 1 << 20
_MAX_LINE = 8 << 20  # longer than any event pipex writes (a log line is cut at 1 MiB)


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
            chunk = handle.read(_READ_CHUNK) if handle is not None else ""
            if chunk:
                buffer += chunk
                *done, buffer = buffer.split("\n")
                yield from done
                if len(buffer) > _MAX_LINE:
                    buffer = ""  # not an event line pipex wrote: skip it rather than hold it
                continue
            # Decide to stop only after a read found nothing new: no line is lost.
            if stop():
                chunk = handle.read(_READ_CHUNK) if handle is not None else ""
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
    directory = _dir(store, workspace)
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
