"""Reading a workspace's results: steps and their runs, logs, meta, output trees (list, cat, export).

Output trees are untrusted: a step's container made them. Paths are resolved
*in the tree* (its manifest), never on the host filesystem, following links
only while they stay inside the tree, so ``cat`` and ``export`` cannot be led
to a host file by a link the container made (the original pipex followed
them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import PipexError, UsageError
from pipex.store.runs import RunMeta, RunRecord
from pipex.ops.workspaces import is_building, resolve_step, resolve_workspace

if TYPE_CHECKING:
    from pipex.store.store import Store
    from pipex.store.trees import Tree, TreeEntry

__all__ = [
    "StepState",
    "StepView",
    "WorkspaceView",
    "WorkspaceSummary",
    "TreeItem",
    "LinkEscapeError",
    "show",
    "list_workspaces",
    "find_run",
    "log_paths",
    "list_tree",
    "read_file",
    "kind_of",
    "export",
]



class StepState(str, Enum):
    """A step's state in a workspace: its current run succeeded, or its latest run failed."""

    OK = "ok"
    FAILED = "failed"


class LinkEscapeError(PipexError):
    """Raised when a path in an output tree leads, through a link, outside that tree."""


@dataclass(frozen=True)
class StepView:
    """One step of a workspace: its state and the run that state comes from."""

    step: str
    state: StepState
    run_id: str
    finished_at: float | None
    duration_ms: int | None
    bytes: int | None
    files: int | None
    exit_code: int | None
    current_run_id: str | None  # the successful run dependants use, even when a later one failed
    worker: str | None = None  # the cluster worker that ran it (None: this machine)

    @property
    def age_sec(self) -> float | None:
        """Seconds since the run finished."""
        return None if self.finished_at is None else max(0.0, time.time() - self.finished_at)


@dataclass(frozen=True)
class WorkspaceView:
    """A workspace: where its project is, whether a build holds it, and its steps."""

    workspace: str
    project_root: str | None
    building: bool
    steps: tuple[StepView, ...]
    running: tuple[str, ...] = ()  # steps the live build runs right now (from its event log)


@dataclass(frozen=True)
class WorkspaceSummary:
    """One line of ``pipex list``."""

    workspace: str
    project_root: str | None
    building: bool
    steps: int
    failed: int
    bytes: int
    last_finished_at: float | None


@dataclass(frozen=True)
class TreeItem:
    """One entry of an output tree as ``cat`` lists it."""

    path: str
    type: str
    size: int
    mode: int
    target: str | None = None


def _meta(store: Store, run_id: str | None) -> RunMeta | None:
    if run_id is None:
        return None
    try:
        return store.read_run(run_id).meta
    except PipexError:
        return None


def _view(store: Store, step: str, current: str | None, failed: str | None) -> StepView:
    current_meta = _meta(store, current)
    failed_meta = _meta(store, failed)
    # A failed run newer than the current one is what the user needs to see first.
    failed_at = (failed_meta.finished_at if failed_meta else None) or 0
    current_at = (current_meta.finished_at if current_meta else None) or 0
    use_failed = failed is not None and (current is None or failed_at > current_at)
    run_id, meta = (failed, failed_meta) if use_failed else (current, current_meta)
    assert run_id is not None
    return StepView(
        step=step,
        state=StepState.FAILED if use_failed else StepState.OK,
        run_id=run_id,
        finished_at=meta.finished_at if meta else None,
        duration_ms=meta.duration_ms if meta else None,
        bytes=meta.bytes if meta else None,
        files=meta.files if meta else None,
        exit_code=meta.exit_code if meta else None,
        current_run_id=current,
        worker=meta.worker if meta else None,
    )


def show(store: Store, workspace: str | None = None) -> WorkspaceView:
    """The steps of ``workspace`` (default: the one of the current directory) with their latest runs."""
    workspace = resolve_workspace(store, workspace)
    current = store.workspace_refs(workspace)
    failed = store.workspace_refs(workspace, kind="failed")
    steps = tuple(_view(store, s, current.get(s), failed.get(s)) for s in sorted(set(current) | set(failed)))
    root = store.workspace_project_root(workspace)
    building = is_building(store, workspace)
    running = _running_steps(store, workspace) if building else ()
    return WorkspaceView(workspace, str(root) if root else None, building, steps, running)


def _running_steps(store: Store, workspace: str) -> tuple[str, ...]:
    from pipex.ops.record import read_events
    from pipex.events import EventKind

    ended = (EventKind.STEP_FINISHED, EventKind.STEP_FAILED, EventKind.STEP_SKIPPED, EventKind.STEP_CACHED)
    running: dict[str, None] = {}
    for event in read_events(store, workspace):
        if event.step is None:
            continue
        if event.kind is EventKind.STEP_STARTING:
            running[event.step] = None
        elif event.kind in ended:
            running.pop(event.step, None)
    return tuple(running)


def list_workspaces(store: Store) -> list[WorkspaceSummary]:
    """Every workspace of the store with its step count and the size of its current outputs."""
    out = []
    for name in store.workspaces():
        view = show(store, name)
        current = [_meta(store, s.current_run_id) for s in view.steps if s.current_run_id]
        finished = [s.finished_at for s in view.steps if s.finished_at is not None]
        out.append(
            WorkspaceSummary(
                workspace=name,
                project_root=view.project_root,
                building=view.building,
                steps=len(view.steps),
                failed=sum(1 for s in view.steps if s.state is StepState.FAILED),
                bytes=sum(m.bytes for m in current if m is not None),
                last_finished_at=max(finished) if finished else None,
            )
        )
    return out


def find_run(store: Store, workspace: str | None, step: str, run: str | None = None, *, succeeded: bool = False) -> RunRecord:
    """The RunRecord to look at: ``run`` (an id or a unique prefix), else the step's latest run.

    With ``succeeded``, the latest means the current successful run (the one
    whose output dependants use), never a failed one.
    """
    workspace = resolve_workspace(store, workspace)
    resolve_step(store, workspace, step)
    if run is not None:
        return store.read_run(_expand_run_id(store, run))
    if succeeded:
        run_id = store.get_ref(workspace, step)
        if run_id is None:
            msg = (
                f"step '{step}' has no successful run in workspace '{workspace}'; "
                f"see why its last run failed: pipex logs {workspace} {step}"
            )
            raise UsageError(msg)
        return store.read_run(run_id)
    view = _view(store, step, store.get_ref(workspace, step), store.get_ref(workspace, step, kind="failed"))
    return store.read_run(view.run_id)


def _expand_run_id(store: Store, run: str) -> str:
    if store.has_run(run):
        return run
    matches = [r for r in store.runs() if r.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    msg = f"no run '{run}' in the store" if not matches else f"run prefix '{run}' is ambiguous ({len(matches)} runs)"
    raise UsageError(msg)


def log_paths(run: RunRecord, stream: str) -> list[tuple[str, Path]]:
    """``[(stream, path)]`` of a run's logs for ``stream`` (stdout, stderr or both)."""
    if stream not in ("stdout", "stderr", "both"):
        msg = f"unknown log stream '{stream}': use stdout, stderr or both"
        raise UsageError(msg)
    streams = ("stdout", "stderr") if stream == "both" else (stream,)
    return [(s, run.log(s)) for s in streams]


# -- output trees ------------------------------------------------------------------------


def _show(path: bytes) -> str:
    from pipex.store._fs import show_path

    return show_path(path)


def _resolve(tree: Tree, path: bytes, *, follow_last: bool = True) -> tuple[bytes, TreeEntry | None]:
    """Resolve ``path`` inside ``tree`` like the kernel would in a checkout; return (real path, entry).

    The root is ``(b"", None)``. Links are followed only while they stay in
    the tree (``pipex.store.links``): an absolute target or one climbing above
    the root raises LinkEscapeError; a missing name raises UsageError.
    """
    from pipex.store.links import Kind, Outcome, walk_path

    def kind_of(parts: tuple[bytes, ...]) -> tuple[Kind, bytes | None] | None:
        entry = tree.get(b"/".join(parts))
        if entry is None:
            return None
        kind = {"dir": Kind.DIR, "link": Kind.LINK}.get(entry.type.value, Kind.FILE)
        return kind, entry.target

    walk = walk_path((), path, kind_of, follow_last=follow_last, stop_at_missing=True)
    if walk.outcome in (Outcome.ESCAPES, Outcome.ABSOLUTE):
        raise _escape(path, walk.via, walk.via_target)
    if walk.outcome in (Outcome.LOOPS, Outcome.CYCLE):
        msg = f"'{_show(path)}': too many levels of links"
        raise LinkEscapeError(msg)
    if walk.not_dir is not None:
        msg = f"'{_show(path)}': '{_show(walk.not_dir)}' is not a directory"
        raise UsageError(msg)
    if walk.missing is not None:
        msg = f"no '{_show(path)}' in the output"
        raise UsageError(msg)
    resolved = b"/".join(walk.parts)
    return resolved, tree.get(resolved) if walk.parts else None


def _escape(path: bytes, via: bytes | None, target: bytes | None = None) -> LinkEscapeError:
    link = f" (link '{_show(via)}'" + (f" -> '{_show(target)}'" if target is not None else "") + ")" if via else ""
    msg = f"refusing '{_show(path)}': it leads outside the output{link}; pipex never follows links out of a step's output"
    return LinkEscapeError(msg)


def _item(entry: TreeEntry, prefix: bytes) -> TreeItem:
    rel = entry.path[len(prefix) + 1 :] if prefix else entry.path
    return TreeItem(
        path=_show(rel),
        type=entry.type.value,
        size=entry.size,
        mode=entry.mode,
        target=_show(entry.target) if entry.target is not None else None,
    )


def list_tree(store: Store, tree_id: str, path: str = "") -> list[TreeItem]:
    """The entries below ``path`` (a directory of the tree; default the root), recursively, sorted."""
    tree = store.read_tree(tree_id)
    real, entry = _resolve(tree, os.fsencode(path))
    if entry is not None and entry.type.value != "dir":
        return [_item(entry, b"")]
    prefix = real
    return [_item(e, prefix) for e in tree.entries if not prefix or e.path.startswith(prefix + b"/")]


def kind_of(store: Store, tree_id: str, path: str) -> str:
    """``dir`` or ``file`` for ``path`` in a tree after following links (inside the tree only)."""
    _real, entry = _resolve(store.read_tree(tree_id), os.fsencode(path))
    return "dir" if entry is None else entry.type.value


def read_file(store: Store, tree_id: str, path: str) -> Iterator[bytes]:
    """The bytes of file ``path`` of a tree, in chunks; links are followed only inside the tree."""
    tree = store.read_tree(tree_id)
    _real, entry = _resolve(tree, os.fsencode(path))
    if entry is None or entry.type.value == "dir":
        msg = f"'{path}' is a directory; list it with: pipex cat WS STEP {path or '.'} (no file given lists)"
        raise UsageError(msg)
    return _chunks(store.open_object(entry, tree_id))


def _chunks(fd: int) -> Iterator[bytes]:
    with os.fdopen(fd, "rb") as handle:
        yield from iter(lambda: handle.read(1 << 16), b"")


def _check_links(tree: Tree) -> None:
    for entry in tree.entries:
        if entry.type.value == "link":
            try:
                _resolve(tree, entry.path)
            except UsageError:
                pass  # dangling inside the tree: harmless, exported as it is
            except LinkEscapeError as error:
                msg = f"cannot export: {error}"
                raise LinkEscapeError(msg) from None


def export(store: Store, tree_id: str, dest: Path) -> None:
    """Materialise tree ``tree_id`` as a fresh copy at ``dest`` (absent or an empty directory).

    Every link is checked first (in the manifest); a link that would lead out
    of the tree refuses the whole export, so nothing is written.
    """
    dest = Path(dest)
    if os.path.lexists(dest):
        if dest.is_symlink() or not dest.is_dir():
            msg = f"cannot export to {dest}: it exists and is not a directory"
            raise UsageError(msg)
        if any(dest.iterdir()):
            msg = f"cannot export to {dest}: the directory is not empty"
            raise UsageError(msg)
    _check_links(store.read_tree(tree_id))
    store.export(tree_id, dest)
