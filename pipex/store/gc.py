"""gc and prune: keep what the roots reach (refs, pins -> runs -> trees -> objects), sweep the rest.

Mark: every workspace's ``steps/`` and ``failed/`` refs and every pin name a
run; a run's meta.json names its ``output_tree``; a tree names its objects.
Sweep: runs, trees, objects and checkouts nobody reached, plus idle named
locks. gc holds the store lock exclusively: builds hold it shared for their
whole duration, so an object ingested by a running build but not yet
referenced is never swept (git's gc race, closed with a lock instead of a
grace period). A dry run holds it shared: it never waits for builds, and
what it reports is what gc would remove if run now.

If a reachable run or tree cannot be read, gc stops before deleting
anything: it cannot know what that tree names, and deleting an object a ref
still names is the one thing gc must never do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipex.errors import StoreCorruptError, StoreError
from pipex.store import locks
from pipex.store._fs import fsync_dir, rmtree, store_errors
from pipex.store.objects import is_oid
from pipex.store.refs import REF_KINDS, read_link
from pipex.store.runs import RunNotFoundError, load_meta
from pipex.store.store import Store
from pipex.store.trees import tree_object_keys

__all__ = ["GcReport", "PruneReport", "gc", "prune"]

_SWEEP_THREADS = 4


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
    base = store.root / "workspaces"
    for ws in store.workspaces():
        for kind in REF_KINDS:
            try:
                names = os.listdir(base / ws / kind)
            except FileNotFoundError:
                continue
            for step in names:
                if (ws, kind, step) in skip:
                    continue
                run_id = read_link(base / ws / kind / step)
                if run_id is None:
                    continue
                if os.path.isdir(store.root / "runs" / run_id):
                    runs.add(run_id)
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
        tree = meta.get("output_tree")
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
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _sweep_objects(directory: Path, prefix: str, live: set[str], dry_run: bool) -> tuple[int, int, int]:
    removed = kept = freed = 0
    with os.scandir(directory) as it:
        for entry in it:
            if prefix + entry.name in live:
                kept += 1
                continue
            freed += entry.stat(follow_symlinks=False).st_size
            removed += 1
            if not dry_run:
                os.unlink(entry.path)
    return removed, kept, freed


def collect(store: Store, *, dry_run: bool, skip_refs: Collection[tuple[str, str, str]] = ()) -> GcReport:
    """Mark and sweep; the caller holds the store lock (exclusive unless ``dry_run``)."""
    with store_errors("gc failed"):
        live_runs, dangling = _roots(store, skip_refs)
        live_trees, live_objects = _mark(store, live_runs)
        freed = 0
        root = store.root

        runs = 0
        for run_id in store.runs():
            if run_id in live_runs:
                continue
            path = root / "runs" / run_id
            freed += _dir_bytes(str(path))
            runs += 1
            if not dry_run:
                rmtree(store._retire(path))  # vanish atomically, then delete
        if runs and not dry_run:
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
                    if not dry_run:
                        os.unlink(entry.path)

        # NOTE: freeing an inode costs ~100 µs on some filesystems (ext4 with
        # discard): the sweep runs in threads (unlink releases the GIL), one
        # fan-out dir per task, alongside the removal of dead checkouts.
        dead_checkouts = [t for t in os.listdir(root / "checkouts") if t not in live_trees]
        with ThreadPoolExecutor(max_workers=_SWEEP_THREADS) as pool:
            checkout_jobs = [] if dry_run else [pool.submit(rmtree, store._retire(root / "checkouts" / t)) for t in dead_checkouts]
            sweeps = pool.map(
                lambda prefix: _sweep_objects(root / "objects" / prefix, prefix, live_objects, dry_run),
                os.listdir(root / "objects"),
            )
            objects = kept_objects = 0
            for removed, kept, size in sweeps:
                objects += removed
                kept_objects += kept
                freed += size
            for job in checkout_jobs:
                job.result()
        checkouts = len(dead_checkouts)

        if not dry_run:
            store.clear_stale_staging()
            named = root / "locks" / "named"
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(named):
                    locks.try_remove_idle(named / name)
    return GcReport(
        dry_run=dry_run,
        runs=runs,
        trees=trees,
        objects=objects,
        checkouts=checkouts,
        bytes=freed,
        kept_runs=len(live_runs),
        kept_trees=kept_trees,
        kept_objects=kept_objects,
        dangling_refs=dangling,
    )


def gc(store: Store, *, dry_run: bool = False) -> GcReport:
    """Remove every run, tree, object and checkout no root reaches; waits for running builds."""
    lock = store.shared_lock() if dry_run else store.exclusive_lock()
    with lock:
        return collect(store, dry_run=dry_run)


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
        report = collect(store, dry_run=dry_run, skip_refs=set(drop))
    return PruneReport(workspace=workspace, dry_run=dry_run, refs_dropped=len(drop), gc=report)
