"""Benchmark: gc (and gc --dry-run) over a store of 100,000 objects, half of them unreferenced."""

from __future__ import annotations

import os
import sys

from _common import emit, scratch, timed

from pipex.store import Store, gc
from pipex.store._fs import rmtree

OBJECTS = 100_000


def make_output(directory, start: int, count: int) -> None:
    # 100 dirs of files, like a real output, every file distinct.
    for i in range(start, start + count):
        d = directory / f"d{i % 100:02d}"
        if i < start + 100:
            d.mkdir(parents=True)
        (d / f"f{i}").write_bytes(b"object %d\n" % i)


def main() -> None:
    work = scratch()
    try:
        store = Store.open(work / "store")
        half = OBJECTS // 2
        make_output(work / "live", 0, half)
        make_output(work / "dead", half, half)
        live = store.ingest(work / "live").tree_id
        dead = store.ingest(work / "dead").tree_id
        store.record_run("live", {"output_tree": live}, None)
        store.record_run("dead", {"output_tree": dead}, None)
        store.set_ref("ws", "step", "live")
        store.checkout(dead)
        os.sync()
        reports = {}
        dry = timed(lambda: reports.setdefault("dry", gc(store, dry_run=True)))
        real = timed(lambda: reports.setdefault("real", gc(store)))
        again = timed(lambda: reports.setdefault("again", gc(store)))
        emit("objects_before", reports["dry"].objects + reports["dry"].kept_objects)
        emit("gc_dry_run_seconds", dry)
        emit("gc_dry_run_would_remove_objects", reports["dry"].objects)
        emit("gc_seconds", real)
        emit("gc_removed_objects", reports["real"].objects)
        emit("gc_removed_checkouts", reports["real"].checkouts)
        emit("gc_removed_bytes", reports["real"].bytes)
        emit("gc_seconds_target", 3.0)
        emit("gc_nothing_to_do_seconds", again)
        emit("ratio_dry_run_over_gc", dry / real)
        # What freeing 50,000 small inodes costs on this filesystem, with nothing of gc around it.
        base = work / "unlink-baseline"
        for p in range(256):
            (base / f"{p:02x}").mkdir(parents=True)
        paths = [base / f"{i % 256:02x}" / f"f{i}" for i in range(half)]
        for i, path in enumerate(paths):
            path.write_bytes(b"object %d\n" % i)
        os.sync()
        unlink = timed(lambda: [os.unlink(p) for p in paths])
        emit("unlink_50k_objects_baseline_seconds", unlink)
        emit("ratio_gc_over_unlink_baseline", real / unlink)
    finally:
        rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
