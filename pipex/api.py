"""The Python API behind the CLI, one function per user verb; tests and other programs call it too.

A thin typed facade: each verb opens the project's store (``ops.project``)
and calls the operation's module under ``pipex.ops``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.ops.build import build, plan
from pipex.ops.project import (
    Project,
    condition_env,
    load,
    open_store,
    open_store_here,
    opened,
    workspace_name,
)

if TYPE_CHECKING:
    from pipex.ops.browse import WorkspaceSummary, WorkspaceView
    from pipex.ops.exec import ExecResult
    from pipex.ops.record import AttachResult
    from pipex.ops.workspaces import RemoveReport
    from pipex.store.gc import GcReport, PruneReport
    from pipex.store.runs import RunRecord
    from pipex.store.store import Store
    from pipex.store.verify import VerifyReport

__all__ = [
    "Project",
    "load",
    "open_store",
    "open_store_here",
    "workspace_name",
    "plan",
    "build",
    "gc",
    "prune",
    "verify",
    "condition_env",
    "show",
    "list_workspaces",
    "find_run",
    "remove_workspaces",
    "remove_step",
    "clean",
    "exec_step",
    "attach",
    "cancel",
]



def gc(store: Store | Path | str | None = None, *, dry_run: bool = False) -> GcReport:
    """Collect what no root references in the project's store (see ``open_store_here``); return the GcReport."""
    from pipex.store.gc import gc as collect

    return collect(opened(store), dry_run=dry_run)


def prune(workspace: str | None = None, *, store: Store | Path | str | None = None, dry_run: bool = False) -> PruneReport:
    """Drop ``workspace``'s old runs (the current one per step stays), then collect."""
    from pipex.ops.workspaces import resolve_workspace
    from pipex.store.gc import prune as prune_store

    the_store = opened(store)
    return prune_store(the_store, resolve_workspace(the_store, workspace), dry_run=dry_run)


def verify(*, store: Store | Path | str | None = None, repair: bool = False) -> VerifyReport:
    """Re-hash every object and check trees, runs and refs; ``repair`` quarantines what is damaged."""
    from pipex.store.verify import verify as check

    return check(open_store_here(store, repair=repair), repair=repair)


def show(workspace: str | None = None, *, store: Store | Path | str | None = None) -> WorkspaceView:
    """A workspace's steps with their latest runs."""
    from pipex.ops import browse

    return browse.show(opened(store), workspace)


def list_workspaces(*, store: Store | Path | str | None = None) -> list[WorkspaceSummary]:
    """Every workspace of the store with sizes."""
    from pipex.ops import browse

    return browse.list_workspaces(opened(store))


def find_run(
    workspace: str | None, step: str, run: str | None = None, *, store: Store | Path | str | None = None, succeeded: bool = False
) -> RunRecord:
    """The RunRecord of a step: ``run`` (id or prefix), else its latest (``succeeded``: current) run."""
    from pipex.ops import browse

    return browse.find_run(opened(store), workspace, step, run, succeeded=succeeded)


def remove_workspaces(workspaces: Sequence[str], *, store: Store | Path | str | None = None) -> RemoveReport:
    """Remove workspaces; refused (nothing removed) while a live build holds any of them."""
    from pipex.ops.workspaces import remove_workspaces as remove

    return remove(opened(store), workspaces)


def remove_step(workspace: str, step: str, *, store: Store | Path | str | None = None) -> RemoveReport:
    """Drop one step's refs from a workspace; refused while a live build holds it."""
    from pipex.ops.workspaces import remove_step as remove

    return remove(opened(store), workspace, step)


def clean(*, store: Store | Path | str | None = None, collect: bool = True, project_root: Path | str | None = None) -> RemoveReport:
    """Remove the workspaces of ``project_root`` (None: all of the store), then gc; refused while a live build holds one."""
    from pipex.ops.workspaces import clean as clean_store

    root = Path(project_root) if project_root is not None else None
    return clean_store(opened(store), collect=collect, project_root=root)


def exec_step(file: Path | str, workspace: str | None = None, **options: Any) -> ExecResult:
    """Run one step from ``file`` against ``workspace``'s current runs (see ``pipex.ops.exec``)."""
    from pipex.ops.exec import exec_step as run_one

    return run_one(file, workspace, **options)


def attach(
    workspace: str | None = None, on_line: Callable[[str], None] = print, *, store: Store | Path | str | None = None
) -> AttachResult:
    """Replay the workspace's latest build log and follow it to the end; return its ``AttachResult``."""
    from pipex.ops import record
    from pipex.ops.workspaces import resolve_workspace

    the_store = opened(store)
    return record.attach(the_store, resolve_workspace(the_store, workspace), on_line)


def cancel(workspace: str | None = None, *, store: Store | Path | str | None = None) -> int:
    """Stop the live build of ``workspace`` (SIGTERM) and wait; return its recorded exit code (130)."""
    from pipex.ops import record
    from pipex.ops.workspaces import resolve_workspace

    the_store = opened(store)
    return record.cancel(the_store, resolve_workspace(the_store, workspace))
