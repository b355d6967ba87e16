"""Workspaces as a user sees them: which exist, which a live build holds, and removing them safely.

A build holds the named store lock ``workspace-<ws>`` for its whole duration
(``pipex.engine.session``). Whether a build is live is therefore one
non-blocking acquire away, and removing a workspace *while holding that lock*
means no build can start on it half way through the removal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import LockBusyError, UsageError
from pipex.store.locks import workspace_lock_name

if TYPE_CHECKING:
    from pipex.store.gc import GcReport
    from pipex.store.store import Store

__all__ = [
    "WorkspaceBusyError",
    "RemoveReport",
    "is_building",
    "idle",
    "resolve_workspace",
    "resolve_step",
    "remove_workspaces",
    "remove_step",
    "clean",
    "project_workspaces",
]


class WorkspaceBusyError(LockBusyError):
    """Raised when a workspace is to be removed or changed while a live build holds it."""


@dataclass(frozen=True)
class RemoveReport:
    """What ``rm``, ``rm-step`` or ``clean`` removed: workspaces, or refs of one step."""

    workspaces: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    gc: GcReport | None = None  # when ``clean`` collected


def is_building(store: Store, workspace: str) -> bool:
    """True if a live process holds ``workspace``'s build lock right now."""
    try:
        with store.lock(workspace_lock_name(workspace), blocking=False):
            return False
    except LockBusyError:
        return True


@contextmanager
def idle(store: Store, workspaces: Sequence[str], doing: str) -> Iterator[None]:
    """Hold the build locks of ``workspaces`` (sorted: no deadlock), or raise WorkspaceBusyError naming the busy ones."""
    with ExitStack() as stack:
        busy = []
        for name in sorted(set(workspaces)):
            try:
                stack.enter_context(store.lock(workspace_lock_name(name), blocking=False))
            except LockBusyError:
                busy.append(name)
        if busy:
            names = ", ".join(f"'{b}'" for b in busy)
            msg = (
                f"cannot {doing}: a live build holds workspace {names}; "
                f"wait for it (pipex attach {busy[0]}) or stop it (pipex cancel {busy[0]})"
            )
            raise WorkspaceBusyError(msg)
        yield


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_workspace(store: Store, name: str | None, *, cwd: Path | None = None) -> str:
    """The workspace ``name`` (which must exist), or the only one whose project root is ``cwd``."""
    known = store.workspaces()
    if name is not None:
        if name not in known:
            listed = ", ".join(known) or "none"
            msg = f"no workspace '{name}' in the store at {store.root}{_did_you_mean(name, known)}; workspaces: {listed}"
            raise UsageError(msg)
        return name
    here = (cwd or Path(os.getcwd())).resolve()
    mine = [ws for ws in known if store.workspace_project_root(ws) == here]
    if len(mine) == 1:
        return mine[0]
    listed = ", ".join(known) or "none"
    why = "several workspaces belong to this directory" if mine else "no workspace belongs to this directory"
    msg = f"name a workspace: {why} (workspaces in the store: {listed})"
    raise UsageError(msg)


def resolve_step(store: Store, workspace: str, step: str) -> str:
    """``step`` if ``workspace`` has a current or failed run of it, else a UsageError listing its steps."""
    known = sorted(set(store.workspace_refs(workspace)) | set(store.workspace_refs(workspace, kind="failed")))
    if step not in known:
        listed = ", ".join(known) or "none yet"
        msg = f"workspace '{workspace}' has no step '{step}'{_did_you_mean(step, known)}; its steps: {listed}"
        raise UsageError(msg)
    return step


def remove_workspaces(store: Store, workspaces: Sequence[str]) -> RemoveReport:
    """Remove workspaces (refs, caches, build log); refuse all of them if a live build holds any.

    Their runs stay in the store until the next ``pipex gc``.
    """
    names = [resolve_workspace(store, name) for name in workspaces]
    with idle(store, names, f"remove {'workspaces' if len(names) > 1 else 'workspace'} {', '.join(names)}"):
        for name in names:
            store.remove_workspace(name)
        remove_orphan_containers(store, names)
    return RemoveReport(workspaces=tuple(names))


def remove_orphan_containers(store: Store, workspaces: Sequence[str]) -> int:
    """Best effort: remove the containers of ``workspaces`` whose starting process is gone (a killed build's).

    No build of them can run (the caller holds their locks); without a
    reachable engine there is nothing to remove from it, and nothing is said.
    """
    from pipex.errors import PipexError
    from pipex.store.owners import container_owner_lives

    names = set(workspaces)

    def keep(labels: Mapping[str, str]) -> bool:
        workspace = str(labels.get("pipex.workspace", ""))
        mine = workspace in names or workspace.split(".exec-", 1)[0] in names
        return not mine or container_owner_lives(labels) is True

    try:
        from pipex.executor.docker import DockerExecutor

        executor = DockerExecutor()
        try:
            return executor.remove_leftovers({"pipex.store": str(store.root)}, keep)
        finally:
            executor.close()
    except (PipexError, ImportError):
        return 0


def remove_step(store: Store, workspace: str, step: str) -> RemoveReport:
    """Drop one step's refs (current and failed run) from a workspace; the next build runs it again unless cached."""
    workspace = resolve_workspace(store, workspace)
    resolve_step(store, workspace, step)
    removed = []
    with idle(store, [workspace], f"remove step '{step}' from workspace '{workspace}'"):
        for kind in ("steps", "failed"):
            if store.get_ref(workspace, step, kind=kind) is not None:
                store.remove_ref(workspace, step, kind=kind)
                removed.append(f"{workspace}/{kind}/{step}")
    return RemoveReport(workspaces=(), refs=tuple(removed))


def project_workspaces(store: Store, project_root: Path) -> list[str]:
    """The workspaces whose recorded project root is ``project_root`` or a directory inside it."""
    root = project_root.resolve()
    mine = []
    for name in store.workspaces():
        recorded = store.workspace_project_root(name)
        if recorded is not None and (recorded == root or root in recorded.parents):
            mine.append(name)
    return mine


def clean(store: Store, *, collect: bool = True, project_root: Path | None = None) -> RemoveReport:
    """Remove the workspaces of ``project_root`` (``None``: every workspace of the store), then gc.

    Refuses, removing nothing, while a live build holds any of them.
    """
    names = store.workspaces() if project_root is None else project_workspaces(store, project_root)
    with idle(store, names, "clean the store"):
        for name in names:
            store.remove_workspace(name)
        remove_orphan_containers(store, names)
    report = None
    if collect:
        from pipex.store.gc import gc

        report = gc(store)
    return RemoveReport(workspaces=tuple(names), gc=report)
