"""Cross-process locks on files under ``locks/`` (fcntl.flock): the store lock and named locks.

``locks/store.lock``: builds hold it shared for their whole duration, gc and
``verify --repair`` exclusive, so gc never sweeps an object that a running
build has ingested but not yet referenced.
``locks/named/<name>``: exclusive locks for fingerprints, caches, workspaces.

flock locks belong to an open file description, so two threads (or two
Store objects) in one process exclude each other just like two processes,
and the kernel drops a lock when its holder dies: a crash never leaves a
stale lock behind.

Linux flock has no writer preference: with builds overlapping one another
the shared lock is never free and gc would wait forever. So gc first takes
``locks/gate.lock`` exclusively, and a process taking the store lock shared
passes through the gate (shared) first: once gc is waiting, new builds queue
behind it while running ones finish. The shared lock is re-entrant within a
process (a build holds it, its ingests take it again), and a re-entry skips
the gate — otherwise a build waiting at the gate while holding the lock and a
gc waiting for the lock while holding the gate would deadlock.

# NOTE: a process holding the shared lock that asks for the exclusive one
# deadlocks itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from pipex.errors import LockBusyError, StoreError

__all__ = [
    "hold",
    "hold_store",
    "named_lock_path",
    "try_remove_idle",
    "workspace_lock_name",
    "run_lock_name",
    "cache_lock_name",
    "record_lock_name",
]


# The named locks, in one place: every holder and every tester of a lock spells its name here.


def workspace_lock_name(workspace: str) -> str:
    """Held by a build (or a recorded exec) of ``workspace`` for its whole duration; rm and clean test it."""
    return f"workspace-{workspace}"


def run_lock_name(fingerprint: str) -> str:
    """Held while a step of ``fingerprint`` runs: two builds that need one fingerprint run it once."""
    return f"run-{fingerprint}"


def cache_lock_name(workspace: str, cache: str) -> str:
    """Held during the setup phase of a step with the exclusive cache ``cache``."""
    return f"cache-{workspace}-{cache}"


def record_lock_name(workspace: str) -> str:
    """Held while a detached build of ``workspace`` is started (its record is claimed)."""
    return f"detach-{workspace}"

_SAFE = re.compile(r"^[A-Za-z0-9_.@+=,-]+$")


def named_lock_path(locks_dir: Path, name: str) -> Path:
    """The lock file for ``name``: one flat file per name, any characters allowed."""
    if not name:
        raise StoreError("lock name must not be empty")
    safe = name if _SAFE.match(name) and not name.startswith(".") else quote(name, safe="")
    return locks_dir / "named" / safe


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # A read-only store can still be locked (flock works on read-only fds).
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _acquire(path: Path, *, shared: bool, blocking: bool, what: str) -> int:
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            fd = _open(path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open(path)
        except OSError as error:
            msg = f"cannot open lock {path}: {error.strerror}"
            raise StoreError(msg) from error
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            msg = f"{what} is held by another process"
            raise LockBusyError(msg) from None
        except BaseException:
            os.close(fd)
            raise
        # gc removes idle named lock files; if ours was unlinked between open and
        # flock we hold a lock on an orphan inode nobody else can see: retry.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def hold(path: Path, *, shared: bool = False, blocking: bool = True, what: str = "lock") -> Iterator[None]:
    """Hold ``path`` locked (shared or exclusive) for the block; LockBusyError if busy and not blocking."""
    fd = _acquire(path, shared=shared, blocking=blocking, what=what)
    try:
        yield
    finally:
        os.close(fd)


def try_remove_idle(path: Path) -> bool:
    """Delete a named lock file nobody holds; True if removed. Safe thanks to the inode check in _acquire."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class _Shared:
    """This process's hold on one store's shared lock: an fd and a count of holders."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.fd = -1
        self.count = 0


_shared: dict[tuple[int, str], _Shared] = {}
_shared_mutex = threading.Lock()


def _shared_state(lock_path: Path) -> _Shared:
    key = (os.getpid(), str(lock_path))  # a forked child holds nothing of its parent's
    with _shared_mutex:
        state = _shared.get(key)
        if state is None:
            state = _shared[key] = _Shared()
        return state


@contextlib.contextmanager
def hold_store(locks_dir: Path, *, shared: bool, blocking: bool = True) -> Iterator[None]:
    """Hold the store lock (shared: re-entrant, through the gate; exclusive: gate then lock)."""
    lock_path = locks_dir / "store.lock"
    gate = locks_dir / "gate.lock"
    what = "the store lock"
    if not shared:
        with hold(gate, blocking=blocking, what=what), hold(lock_path, blocking=blocking, what=what):
            yield
        return
    state = _shared_state(lock_path)
    with state.mutex:
        if state.count == 0:
            with hold(gate, shared=True, blocking=blocking, what=what):
                state.fd = _acquire(lock_path, shared=True, blocking=blocking, what=what)
        state.count += 1
    try:
        yield
    finally:
        with state.mutex:
            state.count -= 1
            if state.count == 0:
                os.close(state.fd)
                state.fd = -1
