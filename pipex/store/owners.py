"""Who owns what in a store: a process token robust to pid reuse, staging names, containers' owner labels."""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipex.store._fs import rmtree

__all__ = [
    "process_start_time",
    "process_alive",
    "owner_token",
    "owner_alive",
    "container_owner_lives",
    "parse_staging_owner",
    "ProcessTmp",
]


def process_start_time(pid: int) -> int | None:
    """Return the start time of ``pid`` in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and ')'; fields after the last ')' are fixed.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if process ``pid`` exists and (when known) started at ``start_time``: pid reuse is not life."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    if start_time:
        current = process_start_time(pid)
        if current is not None and current != start_time:
            return False
    return True


def owner_token() -> str:
    """``<pid>.<start time>``: who owns a staging dir, robust to pid reuse."""
    pid = os.getpid()
    return f"{pid}.{process_start_time(pid) or 0}"


def owner_alive(token: str) -> bool:
    """Whether the process an ``owner_token()`` names still runs (a malformed token: no)."""
    pid, _, start = token.partition(".")
    if not pid.isdigit() or not start.isdigit():
        return False
    return process_alive(int(pid), int(start))


def container_owner_lives(labels: Mapping[str, str]) -> bool | None:
    """Whether the process that started a container (its ``pipex.owner`` label) still runs.

    None for a container of an older pipex, which carries no owner: the
    caller decides by its own rule. The one test of "is this a leftover".
    """
    owner = labels.get("pipex.owner")
    return owner_alive(owner) if owner else None


def parse_staging_owner(name: str) -> tuple[int, int] | None:
    """(pid, start time) from a staging dir name ``<prefix>-<pid>.<start>-<rand>``, or None."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3:
        return None
    pid, _, start = parts[1].partition(".")
    if not pid.isdigit() or not start.isdigit():
        return None
    return int(pid), int(start)


class ProcessTmp:
    """This process's private temp dir under staging/, made on first use, removed at exit."""

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._dirs: dict[int, str] = {}

    def get(self) -> str:
        pid = os.getpid()  # a forked child must not share its parent's dir
        path = self._dirs.get(pid)
        if path is None:
            path = tempfile.mkdtemp(prefix=f"tmp-{owner_token()}-", dir=self._staging)
            self._dirs[pid] = path
            atexit.register(self._cleanup, pid, path)
        return path

    @staticmethod
    def _cleanup(pid: int, path: str) -> None:
        if os.getpid() == pid:
            with contextlib.suppress(OSError):
                rmtree(path)
