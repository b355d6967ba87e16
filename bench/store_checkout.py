"""Benchmark: check out a 10,000-file tree cold (vs os.link of 10,000 files) and warm."""

from __future__ import annotations

import os
import statistics
import sys
import time

from _common import emit, scratch, timed

from pipex.store import Store
from pipex.store._fs import rmtree

FILES = 10_000
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def main() -> None:
    work = scratch()
    try:
        store = Store.open(work / "store")
        flat = work / "flat"
        flat.mkdir()
        for i in range(FILES):
            (flat / f"f{i:05d}").write_bytes(b"content %d\n" % i)
        nested = work / "nested"
        for d in range(100):
            (nested / f"d{d:02d}").mkdir(parents=True)
            for i in range(100):
                (nested / f"d{d:02d}" / f"f{i:02d}").write_bytes(b"nested %d %d\n" % (d, i))
        flat_tree = store.ingest(flat).tree_id
        nested_tree = store.ingest(nested).tree_id
        sources = [os.fsencode(store.objects.path(e.oid)) for e in store.read_tree(flat_tree)]
        os.sync()

        def link_all(dest: bytes) -> None:
            os.mkdir(dest)
            for i, src in enumerate(sources):
                os.link(src, b"%s/f%05d" % (dest, i))

        baseline, cold, cold_nested = [], [], []
        for r in range(REPEATS):
            dest = os.fsencode(work / f"links{r}")
            baseline.append(timed(lambda: link_all(dest)))
            rmtree(dest)
            for tree, times in ((flat_tree, cold), (nested_tree, cold_nested)):
                rmtree(store.checkout_path(tree))
                times.append(timed(lambda: store.checkout(tree)))
        warm = []
        for _ in range(200):
            start = time.perf_counter()
            store.checkout(flat_tree)
            warm.append(time.perf_counter() - start)
        emit("os_link_10k_seconds", min(baseline))
        emit("checkout_cold_10k_seconds", min(cold))
        emit("ratio_checkout_cold_over_os_link", min(cold) / min(baseline))
        emit("ratio_checkout_cold_over_os_link_target", 1.5)
        emit("checkout_cold_10k_nested_100x100_seconds", min(cold_nested))
        emit("checkout_warm_ms_median", statistics.median(warm) * 1000)
        emit("checkout_warm_ms_max", max(warm) * 1000)
        emit("checkout_warm_ms_target", 5.0)
    finally:
        rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
