"""Crash safety and concurrency: SIGKILL at random instants, gc racing ingests in other processes."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
from store_helpers import write_tree

from pipex.store import Store
from pipex.store.gc import gc
from pipex.store.verify import verify
from pipex.store.runs import RunMeta

SPECS = [
    {
        "data": {f"part{j}": (b"%d-%d " % (k, j)) * (1 + 3000 * (j % 4)) for j in range(12)},
        "bin": {"tool": ("exec", b"#!/bin/sh\necho %d\n" % k)},
        "shared.txt": b"the same in every tree " * 200,
        "empty": {},
        "latest": ("link", "data/part0"),
    }
    for k in range(4)
]


def _child(root: Path, seed: int) -> None:
    """Build SPECS over and over (ingest, record, ref), with an occasional gc and checkout."""
    rng = random.Random(seed)
    store = Store.open(root)
    i = seed  # each child starts on another spec: all of them get built and killed
    while True:
        k = i % len(SPECS)
        with store.shared_lock():
            with store.staging_dir("crash") as staging:
                write_tree(staging / "out", SPECS[k])
                tree = store.ingest(staging / "out").tree_id
                store.record_run(f"run{k}-{i % 3}", RunMeta(output_tree=tree), None)
                store.set_ref("ws", f"s{k}", f"run{k}-{i % 3}")
                if rng.random() < 0.3:
                    store.checkout(tree)
        if rng.random() < 0.2:
            gc(store)
        i += 1


def _fork(target, *args) -> int:
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            target(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _reference_trees(tmp_path: Path) -> list[str]:
    ref = Store.open(tmp_path / "reference")
    return [ref.ingest(write_tree(tmp_path / f"ref{k}", spec)).tree_id for k, spec in enumerate(SPECS)]


def _assert_refs_sound(store: Store, expected: list[str]) -> None:
    for step, run_id in store.workspace_refs("ws").items():
        tree = store.read_run(run_id).output_tree
        assert tree == expected[int(step[1:])]
        checkout = store.checkout(tree)
        assert (checkout / "data" / "part1").read_bytes() == SPECS[int(step[1:])]["data"]["part1"]


@pytest.mark.slow
def test_sigkill_at_random_instants_leaves_a_valid_store(tmp_path: Path) -> None:
    expected = _reference_trees(tmp_path)
    root = tmp_path / "store"
    Store.open(root)
    rng = random.Random(1234)
    for iteration in range(60):
        pid = _fork(_child, root, iteration)
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"child ended on its own: {status}"
        store = Store.open(root)  # clears the dead child's staging
        report = verify(store)
        assert report.ok, (iteration, report.problems)
        _assert_refs_sound(store, expected)
    assert [n for n in os.listdir(root / "staging") if not n.startswith("tmp-")] == []
    assert Store.open(root).workspace_refs("ws")  # the children did get work done between kills
    # A fresh ingest of a tree already stored succeeds and adds no object.
    store = Store.open(root)
    for k, spec in enumerate(SPECS):
        tree = store.ingest(write_tree(tmp_path / f"again{k}", spec)).tree_id
        assert tree == expected[k]
    before = sorted(p.name for p in (root / "objects").glob("*/*"))
    for k, spec in enumerate(SPECS):
        assert store.ingest(write_tree(tmp_path / f"third{k}", spec)).tree_id == expected[k]
    assert sorted(p.name for p in (root / "objects").glob("*/*")) == before
    assert verify(store).ok


def _ingester(root: Path, worker: int, stop: Path) -> None:
    store = Store.open(root)
    i = 0
    while not stop.exists() and i < 10_000:
        with store.shared_lock():  # a build: ingest and reference under one shared lock
            with store.staging_dir("conc") as staging:
                out = write_tree(
                    staging / "out",
                    {"mine": b"%d-%d" % (worker, i), "shared": b"shared " * 500, "d": {"n": b"%d" % (i % 7)}},
                )
                tree = store.ingest(out).tree_id
                run_id = f"w{worker}-{i}"
                store.record_run(run_id, RunMeta.from_dict({"output_tree": tree, "worker": worker, "i": i}), None)
                store.set_ref(f"ws{worker}", f"s{i % 4}", run_id)
        i += 1


@pytest.mark.slow
def test_gc_in_a_loop_while_other_processes_ingest(tmp_path: Path) -> None:
    root = tmp_path / "store"
    stop = tmp_path / "stop"
    store = Store.open(root)
    workers = [_fork(_ingester, root, w, stop) for w in range(3)]
    try:
        time.sleep(0.2)
        deadline = time.monotonic() + 2.5
        collections = 0
        while collections < 10 or time.monotonic() < deadline:
            gc(store)  # writer preference: runs between builds even while they overlap
            collections += 1
            if collections >= 200:
                break
    finally:
        stop.touch()
        statuses = [os.waitpid(pid, 0)[1] for pid in workers]
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), statuses
    gc(store)
    assert verify(store).ok
    refs = 0
    for w in range(3):
        for step, run_id in store.workspace_refs(f"ws{w}").items():
            meta = store.read_run(run_id).meta
            checkout = store.checkout(meta.output_tree)
            assert (checkout / "mine").read_bytes() == b"%d-%d" % (w, meta.extra["i"])
            assert (checkout / "shared").read_bytes() == b"shared " * 500
            refs += 1
    assert refs >= 3  # every worker got builds referenced (up to 4 steps each)
