"""gc and prune: mark from refs and pins, sweep the rest, never touch what a ref reaches."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pipex.errors import StoreCorruptError, StoreError
from pipex.store import Store
from pipex.store.gc import gc, prune
from pipex.store.verify import verify
from pipex.store.runs import RunMeta


def _objects(store: Store) -> set[str]:
    return {p.parent.name + p.name for p in (store.root / "objects").glob("*/*")}


def _run(store: Store, make_output, run_id: str, spec: dict) -> str:
    tree_id = store.ingest(make_output(spec)).tree_id
    store.record_run(run_id, RunMeta(output_tree=tree_id), None)
    return tree_id


def test_gc_keeps_what_refs_reach_and_removes_the_rest(store: Store, make_output) -> None:
    kept = _run(store, make_output, "kept", {"a": b"kept", "shared": b"both"})
    gone = _run(store, make_output, "gone", {"b": b"gone", "shared": b"both"})
    store.set_ref("ws", "s", "kept")
    store.checkout(kept)
    store.checkout(gone)
    report = gc(store)
    assert (report.runs, report.trees, report.objects, report.checkouts) == (1, 1, 1, 1)
    assert report.bytes > len(b"gone")
    assert (report.kept_runs, report.kept_trees, report.kept_objects) == (1, 1, 2)
    assert store.runs() == ["kept"]
    assert store.has_tree(kept) and not store.has_tree(gone)
    assert (store.root / "checkouts" / kept).is_dir() and not (store.root / "checkouts" / gone).exists()
    assert verify(store).ok
    assert gc(store).objects == 0
    assert [n for n in os.listdir(store.root / "staging") if not n.startswith("tmp-")] == []  # trash freed


def test_builds_wait_only_while_gc_moves_garbage_aside(store: Store, make_output) -> None:
    from pipex.store.gc import collect, free

    _run(store, make_output, "gone", {"b": b"gone"})
    with store.exclusive_lock():
        collected = collect(store, dry_run=False)
    # The lock is free again; the garbage is out of the store but not yet deleted.
    assert store.runs() == [] and not list((store.root / "objects").glob("*/*"))
    assert os.path.isdir(collected.trash)
    tree = store.ingest(make_output({"b": b"gone"})).tree_id  # same content, stored afresh
    free(collected.trash)
    assert not os.path.exists(collected.trash)
    assert store.checkout(tree).joinpath("b").read_bytes() == b"gone"


def test_dry_run_counts_the_same_and_removes_nothing(store: Store, make_output) -> None:
    _run(store, make_output, "kept", {"a": b"kept"})
    _run(store, make_output, "gone", {"b": b"gone", "c": b"also"})
    store.set_ref("ws", "s", "kept")
    before = _objects(store)
    dry = gc(store, dry_run=True)
    assert dry.dry_run and _objects(store) == before and store.runs() == ["gone", "kept"]
    real = gc(store)
    assert (dry.runs, dry.trees, dry.objects, dry.bytes) == (real.runs, real.trees, real.objects, real.bytes)


def test_failed_refs_and_pins_are_roots(store: Store, make_output) -> None:
    failed = _run(store, make_output, "failed", {"log": b"oops"})
    pinned = _run(store, make_output, "pinned", {"p": b"pinned"})
    store.set_ref("ws", "s", "failed", kind="failed")
    store.pin("pinned")
    gc(store)
    assert store.has_tree(failed) and store.has_tree(pinned)
    store.unpin("pinned")
    gc(store)
    assert not store.has_tree(pinned) and store.runs() == ["failed"]


def test_gc_on_empty_store_and_dangling_refs(store: Store, make_output) -> None:
    assert gc(store).objects == 0
    _run(store, make_output, "r", {"a": b"1"})
    store.set_ref("ws", "s", "r")
    os.rename(store.root / "runs" / "r", store.root / "staging" / "lost")
    report = gc(store)
    assert report.dangling_refs == 1


def test_gc_stops_before_deleting_when_a_reachable_tree_is_damaged(store: Store, make_output) -> None:
    tree = _run(store, make_output, "r", {"a": b"1"})
    _run(store, make_output, "garbage", {"g": b"2"})
    store.set_ref("ws", "s", "r")
    path = store.tree_path(tree)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-5])
    before = _objects(store)
    with pytest.raises(StoreCorruptError, match="gc stopped before deleting anything"):
        gc(store)
    assert _objects(store) == before and "garbage" in store.runs()


def test_gc_waits_for_builds_holding_the_shared_lock(store: Store, make_output) -> None:
    out = make_output({"fresh": b"not yet referenced"})
    done = threading.Event()
    with store.shared_lock():
        tree = store.ingest(out).tree_id
        thread = threading.Thread(target=lambda: (gc(Store.open(store.root)), done.set()))
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()  # gc waits while the build holds the lock
        store.record_run("r", RunMeta(output_tree=tree), None)
        store.set_ref("ws", "s", "r")
    thread.join(10)
    assert done.is_set()
    assert store.checkout(tree).joinpath("fresh").read_bytes() == b"not yet referenced"


def test_prune_drops_failed_refs_and_keeps_current_and_other_workspaces(store: Store, make_output) -> None:
    current = _run(store, make_output, "current", {"a": b"cur"})
    failed = _run(store, make_output, "failed", {"f": b"fail"})
    other = _run(store, make_output, "other", {"o": b"other"})
    store.set_ref("ws", "s", "current")
    store.set_ref("ws", "s", "failed", kind="failed")
    store.set_ref("ws2", "s", "other")
    store.set_ref("ws2", "t", "current")
    dry = prune(store, "ws", dry_run=True)
    assert dry.refs_dropped == 1 and dry.gc.runs == 1 and store.get_ref("ws", "s", kind="failed") == "failed"
    report = prune(store, "ws")
    assert report.refs_dropped == 1 and report.gc.runs == 1
    assert store.runs() == ["current", "other"]
    assert store.has_tree(current) and store.has_tree(other) and not store.has_tree(failed)


def test_prune_with_keep_steps_drops_refs_of_removed_steps(store: Store, make_output) -> None:
    _run(store, make_output, "a", {"a": b"a"})
    _run(store, make_output, "b", {"b": b"b"})
    store.set_ref("ws", "keep", "a")
    store.set_ref("ws", "removed", "b")
    prune(store, "ws", keep_steps={"keep"})
    assert store.workspace_refs("ws") == {"keep": "a"} and store.runs() == ["a"]


def test_prune_of_an_unknown_workspace(store: Store) -> None:
    with pytest.raises(StoreError, match="no workspace 'nope'"):
        prune(store, "nope")


def test_gc_removes_idle_named_lock_files(store: Store) -> None:
    with store.lock("held"):
        with store.lock("idle"):
            pass
        gc(store)
        names = os.listdir(store.root / "locks" / "named")
    assert names == ["held"]


def test_gc_reports_progress_of_sweep_and_freeing(store: Store, make_output) -> None:
    _run(store, make_output, "gone", {"b": b"gone"})
    seen: list[tuple[str, int, int]] = []
    gc(store, progress=lambda phase, done, total: seen.append((phase, done, total)))
    phases = {phase for phase, _, _ in seen}
    assert phases == {"sweeping objects", "freeing space"}
    for phase in phases:
        last = [s for s in seen if s[0] == phase][-1]
        assert last[1] == last[2]  # each phase reaches its total
