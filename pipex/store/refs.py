"""Refs: the gc roots. Workspaces hold symlinks to runs; pins keep runs by hand.

On disk::

    workspaces/<ws>/workspace.json            {"project_root": "/abs/path"}
    workspaces/<ws>/steps/<step>  -> ../../../runs/<run_id>   current successful run
    workspaces/<ws>/failed/<step> -> ../../../runs/<run_id>   last failed run
    pins/<run_id>                              empty file: run kept by hand

A ref is a relative symlink, so the store can be moved or mounted elsewhere,
and ``ls -l`` shows what a workspace points at. It is replaced atomically:
the new link is made under a temporary name and renamed over the old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import RunNotFoundError, StoreCorruptError, StoreError
from pipex.store._fs import fsync_dir, rmtree, store_errors, write_atomic
from pipex.store.runs import check_run_id

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = [
    "REF_KINDS",
    "RefEntry",
    "check_name",
    "check_kind",
    "workspace_name_problem",
    "link_target",
    "parse_link",
    "read_link",
    "ref_dir",
    "walk_refs",
    "workspaces",
]

REF_KINDS = ("steps", "failed")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_PREFIX = "../../../runs/"


_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def workspace_name_problem(name: object) -> str | None:
    """Why ``name`` is not a workspace name, or None: THE workspace-name rule (the CLI and the store use it)."""
    if isinstance(name, str) and _WORKSPACE_RE.match(name):
        return None
    return (
        f"invalid workspace name {name!r}: use at most 100 letters, digits, '_', '-' and '.', "
        "not starting with '.' or '-'"
    )


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a safe name for one path component (step, cache, workspace), else raise.

    Workspaces follow ``workspace_name_problem``; steps and caches follow the
    pipeline schema, which allows a leading '.'. '.' and '..' never.
    """
    if what == "workspace":
        problem = workspace_name_problem(value)
        if problem is not None:
            raise StoreError(problem)
        return value
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        msg = f"invalid {what} name {value!r}: use letters, digits, '_', '-' and '.'"
        raise StoreError(msg)
    return value


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a ref kind (steps, failed)."""
    if kind not in REF_KINDS:
        msg = f"unknown ref kind {kind!r}: use one of {', '.join(REF_KINDS)}"
        raise StoreError(msg)
    return kind


def link_target(run_id: str) -> str:
    """What a ref symlink contains for ``run_id``."""
    return _PREFIX + run_id


def parse_link(target: str) -> str | None:
    """The run id a ref symlink names, or None if the link is not a ref."""
    if not target.startswith(_PREFIX):
        return None
    run_id = target[len(_PREFIX) :]
    return run_id if run_id and "/" not in run_id and run_id not in (".", "..") else None


def read_link(path: str | os.PathLike[str]) -> str | None:
    """The run id of the ref at ``path``; None if there is none."""
    try:
        return parse_link(os.readlink(path))
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None


def ref_dir(root: Path, workspace: str, kind: str) -> Path:
    """``workspaces/<ws>/<kind>/`` of the store at ``root`` (names checked)."""
    return root / "workspaces" / check_name(workspace, "workspace") / check_kind(kind)


def set_ref(store: Store, workspace: str, step: str, run_id: str, *, kind: str = "steps") -> None:
    """Point ``workspaces/<ws>/<kind>/<step>`` at run ``run_id`` (atomic symlink swap)."""
    check_name(step, "step")
    check_run_id(run_id)
    links = ref_dir(store.root, workspace, kind)
    with store.shared_lock(), store_errors(f"cannot set ref {workspace}/{kind}/{step}"):
        if not (store.run_path(run_id) / "meta.json").is_file():
            msg = f"cannot point {workspace}/{kind}/{step} at run {run_id}: no such run"
            raise RunNotFoundError(msg)
        links.mkdir(parents=True, exist_ok=True)
        tmp = os.path.join(store.tmpdir(), f"ref-{step}-{os.urandom(4).hex()}")
        os.symlink(link_target(run_id), tmp)
        try:
            os.rename(tmp, links / step)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(links)


def remove_ref(store: Store, workspace: str, step: str, *, kind: str = "steps") -> None:
    """Remove a ref; missing is fine."""
    links = ref_dir(store.root, workspace, kind)
    with store_errors(f"cannot remove ref {workspace}/{kind}/{step}"):
        path = links / check_name(step, "step")
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except IsADirectoryError:
            rmtree(store.retire(path))  # damage: a directory where the link belongs
        fsync_dir(links)


def workspaces(root: Path) -> list[str]:
    """Names of the workspaces in the store at ``root``, sorted."""
    with store_errors("cannot list workspaces"):
        base = root / "workspaces"
        return sorted(n for n in os.listdir(base) if not n.startswith(".") and (base / n).is_dir())


@dataclass(frozen=True)
class RefEntry:
    """One name under ``workspaces/<ws>/<kind>/``: a ref link (``run_id`` set) or damage (``is_link`` False)."""

    workspace: str
    kind: str
    step: str
    path: Path
    is_link: bool
    run_id: str | None


def walk_refs(root: Path, workspaces_: Iterable[str] | None = None, kinds: Iterable[str] = REF_KINDS) -> Iterator[RefEntry]:
    """Every entry under the workspaces' ref dirs (default: all workspaces, both kinds), sorted by name.

    The one walk of the refs: gc marks from it, verify checks it, listings read it.
    """
    for ws in workspaces(root) if workspaces_ is None else workspaces_:
        for kind in kinds:
            # Listed names are path components as they are; a named workspace is checked.
            base = root / "workspaces" / ws / kind if workspaces_ is None else ref_dir(root, ws, kind)
            try:
                names = sorted(os.listdir(base))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for step in names:
                path = base / step
                is_link = os.path.islink(path)
                yield RefEntry(ws, kind, step, path, is_link, read_link(path) if is_link else None)


def create_workspace(store: Store, workspace: str, project_root: Path) -> None:
    """Create (or adopt) a workspace and record the project root it belongs to."""
    base = store.root / "workspaces" / check_name(workspace, "workspace")
    doc = {"project_root": os.fsdecode(Path(project_root).resolve())}
    with store_errors(f"cannot create workspace {workspace}"):
        for kind in REF_KINDS:
            (base / kind).mkdir(parents=True, exist_ok=True)
        write_atomic(base / "workspace.json", json.dumps(doc).encode(), Path(store.tmpdir()), mode=0o644)


def workspace_project_root(root: Path, workspace: str) -> Path | None:
    """The project root a workspace recorded, or None (no such workspace or none recorded)."""
    path = root / "workspaces" / check_name(workspace, "workspace") / "workspace.json"
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        msg = f"{path} is damaged; remove it or run 'pipex verify --repair'"
        raise StoreCorruptError(msg) from None
    recorded = doc.get("project_root") if isinstance(doc, dict) else None
    return Path(recorded) if isinstance(recorded, str) else None


def remove_workspace(store: Store, workspace: str) -> None:
    """Remove a workspace's refs and caches (its runs go at the next gc)."""
    check_name(workspace, "workspace")
    with store.shared_lock(), store_errors(f"cannot remove workspace {workspace}"):
        for base in (store.root / "workspaces", store.root / "caches"):
            path = base / workspace
            if path.exists():
                rmtree(store.retire(path))
                fsync_dir(base)


def pin(store: Store, run_id: str) -> None:
    """Keep run ``run_id`` (a gc root) until unpinned."""
    with store.shared_lock(), store_errors(f"cannot pin run {run_id}"):
        if not (store.run_path(run_id) / "meta.json").is_file():
            msg = f"cannot pin run {run_id}: no such run"
            raise RunNotFoundError(msg)
        fd = os.open(store.root / "pins" / run_id, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.close(fd)
        fsync_dir(store.root / "pins")


def unpin(root: Path, run_id: str) -> None:
    """Stop keeping run ``run_id`` by hand; missing is fine."""
    with store_errors(f"cannot unpin run {run_id}"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "pins" / check_run_id(run_id))


def pins(root: Path) -> list[str]:
    """The pinned run ids, sorted."""
    with store_errors("cannot list pins"):
        return sorted(n for n in os.listdir(root / "pins") if not n.startswith("."))
