"""Runs, refs, workspaces, pins, caches, staging, locks and the store root."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipex.errors import LockBusyError, StoreCorruptError, StoreError
from pipex.store import RunNotFoundError, Store, default_root
from pipex.store.owners import process_start_time
from pipex.store.runs import RunMeta


@pytest.fixture
def tree_id(store: Store, make_output) -> str:
    return store.ingest(make_output({"a": b"1"})).tree_id


def test_record_run_writes_meta_and_moves_logs(store: Store, tree_id: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "stdout.log").write_text("out\n")
    (logs / "attempt-1.stderr.log").write_text("first try\n")
    record = store.record_run("fp1", RunMeta.from_dict({"output_tree": tree_id, "step": "s"}), logs)
    assert record.path == store.root / "runs" / "fp1"
    assert (record.meta.output_tree, record.meta.step) == (tree_id, "s")
    assert json.loads((record.path / "meta.json").read_text())["format"] == 2
    assert record.output_tree == tree_id
    assert store.run_log("fp1", "stdout").read_text() == "out\n"
    assert store.run_log("fp1", "stderr").read_text() == ""  # always present
    assert (record.path / "attempt-1.stderr.log").exists()
    assert not (logs / "stdout.log").exists()
    assert store.has_run("fp1")
    assert json.loads((record.path / "meta.json").read_text())["step"] == "s"


def test_record_run_keeps_an_existing_run(store: Store, tree_id: str) -> None:
    store.record_run("fp1", RunMeta.from_dict({"output_tree": tree_id, "n": 1}), None)
    again = store.record_run("fp1", RunMeta.from_dict({"output_tree": tree_id, "n": 2}), None)
    assert again.meta.extra["n"] == 1


def test_record_run_replaces_a_damaged_run(store: Store, tree_id: str) -> None:
    store.record_run("fp1", RunMeta.from_dict({"output_tree": tree_id, "n": 1}), None)
    meta = store.root / "runs" / "fp1" / "meta.json"
    os.chmod(meta, 0o644)
    meta.write_text("{trunc")
    assert not store.has_run("fp1")
    assert store.record_run("fp1", RunMeta.from_dict({"output_tree": tree_id, "n": 2}), None).meta.extra["n"] == 2


def test_record_run_refuses_a_missing_tree_and_bad_ids(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        store.record_run("fp", RunMeta.from_dict({"output_tree": "0" * 32}), None)
    with pytest.raises(StoreError, match="invalid run id"):
        store.record_run("../evil", RunMeta.from_dict({}), None)
    with pytest.raises(StoreError, match="not JSON"):
        store.record_run("fp", RunMeta.from_dict({"x": object()}), None)
    assert store.runs() == []


def test_missing_and_damaged_runs_are_clear_errors(store: Store, tree_id: str) -> None:
    assert not store.has_run("nope")
    with pytest.raises(RunNotFoundError, match="run nope not found"):
        store.read_run("nope")
    (store.root / "runs" / "bare").mkdir()
    with pytest.raises(StoreCorruptError, match="no meta.json"):
        store.read_run("bare")
    store.record_run("gone", RunMeta(output_tree=tree_id), None)
    os.chmod(store.tree_path(tree_id), 0o644)
    os.unlink(store.tree_path(tree_id))
    assert not store.has_run("gone")  # its output is gone: build again


def test_refs_point_at_runs_and_swap_atomically(store: Store, tree_id: str) -> None:
    store.record_run("r1", RunMeta(output_tree=tree_id), None)
    store.record_run("r2", RunMeta(output_tree=tree_id), None)
    assert store.get_ref("ws", "step") is None
    store.set_ref("ws", "step", "r1")
    link = store.root / "workspaces" / "ws" / "steps" / "step"
    assert os.readlink(link) == "../../../runs/r1"
    assert link.resolve() == (store.root / "runs" / "r1").resolve()
    store.set_ref("ws", "step", "r2")
    store.set_ref("ws", "step", "r1", kind="failed")
    assert store.get_ref("ws", "step") == "r2"
    assert store.get_ref("ws", "step", kind="failed") == "r1"
    assert store.workspaces() == ["ws"]
    assert store.workspace_refs("ws") == {"step": "r2"}
    store.remove_ref("ws", "step")
    store.remove_ref("ws", "step")
    assert store.get_ref("ws", "step") is None


def test_refs_to_missing_runs_and_bad_names_are_refused(store: Store, tree_id: str) -> None:
    with pytest.raises(RunNotFoundError):
        store.set_ref("ws", "s", "missing")
    store.record_run("r", RunMeta(output_tree=tree_id), None)
    for ws, step, kind in (("../x", "s", "steps"), (".hidden", "s", "steps"), ("ws", "a/b", "steps"), ("ws", "..", "steps"), ("ws", "s", "other")):
        with pytest.raises(StoreError):
            store.set_ref(ws, step, "r", kind=kind)


def test_names_the_pipeline_schema_allows_are_accepted(store: Store, tree_id: str) -> None:
    store.record_run("r", RunMeta(output_tree=tree_id), None)
    store.set_ref("ws", "-leading-dash", "r")
    assert store.get_ref("ws", "-leading-dash") == "r"
    assert store.cache_dir("ws", ".npm").name == ".npm"
    with pytest.raises(StoreError):
        store.cache_dir("ws", "..")


def test_workspaces_record_their_project_root(store: Store, tmp_path: Path) -> None:
    assert store.workspace_project_root("ws") is None
    store.create_workspace("ws", tmp_path)
    assert store.workspace_project_root("ws") == tmp_path.resolve()
    store.cache_dir("ws", "pip").joinpath("f").write_text("x")
    store.remove_workspace("ws")
    assert store.workspaces() == []
    assert not (store.root / "caches" / "ws").exists()


def test_pins(store: Store, tree_id: str) -> None:
    store.record_run("r", RunMeta(output_tree=tree_id), None)
    store.pin("r")
    assert store.pins() == ["r"]
    store.unpin("r")
    store.unpin("r")
    assert store.pins() == []
    with pytest.raises(RunNotFoundError):
        store.pin("nope")


def test_staging_dir_is_removed_even_with_read_only_content(store: Store) -> None:
    with store.staging_dir("run-x") as path:
        assert path.parent == store.root / "staging"
        assert f"-{os.getpid()}." in path.name
        (path / "d").mkdir()
        (path / "d" / "f").write_text("x")
        os.chmod(path / "d" / "f", 0o444)
        os.chmod(path / "d", 0o555)
    assert not path.exists()


def test_open_clears_staging_of_dead_processes_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    me = os.getpid()
    start = process_start_time(me)
    dead = store.root / "staging" / f"run-a-{dead_pid}.123-abc"
    reused = store.root / "staging" / f"run-b-{me}.{start + 1}-abc"  # our pid, another start time
    alive = store.root / "staging" / f"run-c-{me}.{start}-abc"
    for path in (dead, reused, alive):
        path.mkdir()
        (path / "f").write_text("x")
    os.chmod(dead, 0o555)
    Store.open(store.root)
    assert not dead.exists() and not reused.exists()
    assert alive.exists()


def _hold_lock(root: str, name: str, ready, release) -> None:
    store = Store.open(root)
    with store.lock(name):
        ready.set()
        release.wait(10)


def test_named_lock_is_cross_process(store: Store) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(store.root), "run-abc", ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(LockBusyError, match="run-abc"):
            with store.lock("run-abc", blocking=False):
                pass
        with store.lock("other", blocking=False):
            pass
    finally:
        release.set()
        proc.join(10)
    with store.lock("run-abc", blocking=False):
        pass


def test_shared_locks_coexist_and_exclusive_waits(store: Store) -> None:
    order: list[str] = []
    with store.shared_lock(), store.shared_lock(blocking=False):
        with pytest.raises(LockBusyError):
            with store.exclusive_lock(blocking=False):
                pass
        thread = threading.Thread(target=lambda: (store.exclusive_lock().__enter__(), order.append("gc")))
        thread.start()
        time.sleep(0.2)
        order.append("build done")
    thread.join(5)
    assert order == ["build done", "gc"]


def test_lock_names_with_odd_characters(store: Store) -> None:
    with store.lock("cache-ws-a/b c"):
        with pytest.raises(LockBusyError):
            with store.lock("cache-ws-a/b c", blocking=False):
                pass


def test_default_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIPEX_STORE", str(tmp_path / "env"))
    assert default_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert default_root() == tmp_path / "env"
    monkeypatch.delenv("PIPEX_STORE")
    assert default_root().name == "pipex"


def test_newer_store_format_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    marker = store.root / "store.json"
    os.chmod(marker, 0o644)
    marker.write_text('{"format": 99}')
    with pytest.raises(StoreError, match="format 99"):
        Store.open(store.root)
