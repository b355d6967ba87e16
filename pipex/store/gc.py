"""gc and prune: keep what the roots reach (refs, pins -> runs -> trees -> objects), sweep the rest.

Mark: every workspace's ``steps/`` and ``failed/`` refs and every pin name a
run; a run's meta.json names its ``output_tree``; a tree names its objects.
Sweep: runs, trees, objects and checkouts nobody reached, plus idle named
locks. gc holds the store lock exclusively: builds hold it shared for their
whole duration, so an object ingested by a running build but not yet
referenced is never swept (git's gc race, closed with a lock instead of a
grace period). Under the lock garbage is only renamed into a staging dir;
it is freed after the lock is released, so builds wait for the renames and
not for the (on some disks much slower) freeing of inodes. A dry run holds
the lock shared: it never waits for builds, and what it reports is what gc
would remove if run now.

If a reachable run or tree cannot be read, gc stops before deleting
anything: it cannot know what that tree names, and deleting an object a ref
still names is the one thing gc must never do.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipex.errors import StoreCorruptError, StoreError
from pipex.store import locks
from pipex.store._fs import fsync_dir, rmtree, store_errors, walk_files
from pipex.store.objects import is_oid
from pipex.store.refs import walk_refs
from pipex.store.runs import RunNotFoundError, load_meta
from pipex.store.owners import owner_token
from pipex.store.store import Store
from pipex.store.trees import tree_object_keys

__all__ = ["GcReport", "PruneReport", "gc", "prune"]

_FREE_THREADS = 4

#: ``progress(phase, done, total)``: how far gc's sweep or freeing has come.
Progress = Callable[[str, int, int], None]



@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, with ``dry_run``, would remove) and what it kept."""

    dry_run: bool
    runs: int
    trees: int
    objects: int
    checkouts: int
    bytes: int
    kept_runs: int
    kept_trees: int
    kept_objects: int
    dangling_refs: int


@dataclass(frozen=True)
class PruneReport:
    """What prune dropped from one workspace, and the gc that followed."""

    workspace: str
    dry_run: bool
    refs_dropped: int
    gc: GcReport


def _roots(store: Store, skip: Collection[tuple[str, str, str]]) -> tuple[set[str], int]:
    runs: set[str] = set()
    dangling = 0
    for ref in walk_refs(store.root):
        if (ref.workspace, ref.kind, ref.step) in skip or ref.run_id is None:
            continue
        if os.path.isdir(store.root / "runs" / ref.run_id):
            runs.add(ref.run_id)
        else:
            dangling += 1
    for run_id in store.pins():
        if os.path.isdir(store.root / "runs" / run_id):
            runs.add(run_id)
    return runs, dangling


def _mark(store: Store, live_runs: set[str]) -> tuple[set[str], set[str]]:
    trees: set[str] = set()
    for run_id in live_runs:
        try:
            meta = load_meta(run_id, store.root / "runs" / run_id)
        except RunNotFoundError:
            continue
        except StoreCorruptError as error:
            msg = f"gc stopped before deleting anything: {error}"
            raise StoreCorruptError(msg) from None
        tree = meta.output_tree
        if tree is not None:
            trees.add(tree)
    objects: set[str] = set()
    for tree in trees:
        if not is_oid(tree):
            msg = f"gc stopped before deleting anything: a run names the invalid tree id {tree!r}"
            raise StoreCorruptError(msg)
        try:
            data = store.tree_path(tree).read_bytes()
        except FileNotFoundError:
            continue  # verify reports the run; nothing of it is left to keep
        try:
            objects.update(tree_object_keys(tree, data))
        except StoreCorruptError as error:
            msg = f"gc stopped before deleting anything: {error}"
            raise StoreCorruptError(msg) from None
    return trees, objects


def _dir_bytes(path: str) -> int:
    return sum(st.st_size for _, st in walk_files(path))


def _sweep_objects(directory: Path, prefix: str, live: set[str], trash: str | None) -> tuple[int, int, int]:
    removed = kept = freed = 0
    with os.scandir(directory) as it:
        for entry in it:
            key = prefix + entry.name
            if key in live:
                kept += 1
                continue
            freed += entry.stat(follow_symlinks=False).st_size
            removed += 1
            if trash is not None:
                os.rename(entry.path, os.path.join(trash, key))
    return removed, kept, freed


@dataclass(frozen=True)
class _Collected:
    report: GcReport
    trash: str | None  # what to free once the lock is released


def collect(
    store: Store,
    *,
    dry_run: bool,
    skip_refs: Collection[tuple[str, str, str]] = (),
    progress: Progress | None = None,
) -> _Collected:
    """Mark and move every unreachable thing out of the store; the caller holds the store lock.

    Garbage is renamed into a staging dir (cheap: no inode is freed) and
    returned for ``free`` to delete after the lock is released.

    # NOTE: freeing an inode costs 60-110 µs on ext4 mounted with discard
    # against ~10 µs for a rename: builds wait for the renames only. If gc
    # dies before freeing, the staging dir is a dead process's and the next
    # Store.open removes it.
    """
    with store_errors("gc failed"):
        live_runs, dangling = _roots(store, skip_refs)
        live_trees, live_objects = _mark(store, live_runs)
        freed = 0
        root = store.root
        trash = None if dry_run else tempfile.mkdtemp(prefix=f"gc-{owner_token()}-", dir=root / "staging")

        runs = 0
        for run_id in store.runs():
            if run_id in live_runs:
                continue
            path = root / "runs" / run_id
            freed += _dir_bytes(str(path))
            runs += 1
            if trash is not None:
                _move(path, os.path.join(trash, "runs", run_id))
        if runs and trash is not None:
            fsync_dir(root / "runs")

        trees = kept_trees = 0
        for prefix in os.listdir(root / "trees"):
            with os.scandir(root / "trees" / prefix) as it:
                for entry in it:
                    name = entry.name
                    if name.endswith(".json") and prefix + name[:-5] in live_trees:
                        kept_trees += 1
                        continue
                    freed += entry.stat(follow_symlinks=False).st_size
                    trees += 1
                    if trash is not None:
                        os.unlink(entry.path)  # small and few: not worth moving

        dead_checkouts = [t for t in os.listdir(root / "checkouts") if t not in live_trees]
        if trash is not None:
            for tree in dead_checkouts:
                _move(root / "checkouts" / tree, os.path.join(trash, "checkouts", tree))

        objects_trash = None
        if trash is not None:
            objects_trash = os.path.join(trash, "objects")
            os.mkdir(objects_trash)
        objects = kept_objects = 0
        prefixes = os.listdir(root / "objects")
        for done, prefix in enumerate(prefixes, 1):
            removed, kept, size = _sweep_objects(root / "objects" / prefix, prefix, live_objects, objects_trash)
            objects += removed
            kept_objects += kept
            freed += size
            if progress is not None:
                progress("sweeping objects", done, len(prefixes))

        if trash is not None:
            store.clear_stale_staging()
            named = root / "locks" / "named"
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(named):
                    locks.try_remove_idle(named / name)
    report = GcReport(
        dry_run=dry_run,
        runs=runs,
        trees=trees,
        objects=objects,
        checkouts=len(dead_checkouts),
        bytes=freed,
        kept_runs=len(live_runs),
        kept_trees=kept_trees,
        kept_objects=kept_objects,
        dangling_refs=dangling,
    )
    return _Collected(report, trash)


def _move(src: Path | str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        os.rename(src, dest)
    except PermissionError:
        os.chmod(src, 0o755)  # a read-only checkout: moving a dir rewrites its ".."
        os.rename(src, dest)


def _unlink_all(directory: str, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))


def free(trash: str | None, progress: Progress | None = None) -> None:
    """Delete what ``collect`` moved aside; no lock needed, nothing in the store names it.

    Best effort: what cannot be deleted now stays in staging, and the next
    Store.open after this process is gone removes it.
    """
    if trash is None:
        return
    with contextlib.suppress(OSError):
        objects = os.path.join(trash, "objects")
        names = os.listdir(objects)
        # Threads: unlink releases the GIL and a freeing disk is often the bottleneck.
        with ThreadPoolExecutor(max_workers=_FREE_THREADS) as pool:
            jobs = [pool.submit(rmtree, os.path.join(trash, n)) for n in os.listdir(trash) if n != "objects"]
            jobs += [pool.submit(_unlink_all, objects, names[i::_FREE_THREADS]) for i in range(_FREE_THREADS)]
            for done, job in enumerate(jobs, 1):
                job.result()
                if progress is not None:
                    progress("freeing space", done, len(jobs))
        rmtree(trash)


def gc(store: Store, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
    """Remove every run, tree, object and checkout no root reaches; waits for running builds.

    ``progress(phase, done, total)`` is called as the sweep and the freeing advance.
    """
    lock = store.shared_lock() if dry_run else store.exclusive_lock()
    with lock:
        collected = collect(store, dry_run=dry_run, progress=progress)
    free(collected.trash, progress)
    return collected.report


def prune(
    store: Store, workspace: str, *, dry_run: bool = False, keep_steps: Collection[str] | None = None
) -> PruneReport:
    """Keep only ``workspace``'s current successful run per step, then collect.

    Drops the workspace's ``failed/`` refs and, when ``keep_steps`` is given
    (the steps the pipeline still has), its refs to other steps. Runs that
    other workspaces or pins reference stay.
    """
    if workspace not in store.workspaces():
        msg = f"no workspace {workspace!r} in the store at {store.root}"
        raise StoreError(msg)
    lock = store.shared_lock() if dry_run else store.exclusive_lock()
    with lock:
        drop = [(workspace, "failed", step) for step in store.workspace_refs(workspace, kind="failed")]
        if keep_steps is not None:
            keep = set(keep_steps)
            drop += [(workspace, "steps", step) for step in store.workspace_refs(workspace) if step not in keep]
        if not dry_run:
            for ws, kind, step in drop:
                store.remove_ref(ws, step, kind=kind)
        collected = collect(store, dry_run=dry_run, skip_refs=set(drop))
    free(collected.trash)
    return PruneReport(workspace=workspace, dry_run=dry_run, refs_dropped=len(drop), gc=collected.report)
