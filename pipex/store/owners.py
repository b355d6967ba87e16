"""Who owns what in a store: a process token robust to pid reuse, staging names, containers' owner labels."""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipex.store._fs import process_alive, process_start_time, rmtree

__all__ = ["owner_token", "owner_alive", "container_owner_lives", "parse_staging_owner", "ProcessTmp"]


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
