"""Benchmark: ingest 1 GiB (100 x 10 MiB) against xxh3-128 hashing the same files; 10,000 x 4 KiB files/s."""

from __future__ import annotations

import os
import sys

from _common import emit, scratch, timed

from pipex.store import Store, hash_file
from pipex.store._fs import rmtree

import xxhash

MIB = 1 << 20
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def make_big(directory, seed: int) -> list:
    directory.mkdir()
    block = bytearray(os.urandom(10 * MIB))
    paths = []
    for i in range(100):
        block[:16] = b"%08d%08d" % (seed, i)  # distinct contents: no dedup flattering ingest
        path = directory / f"f{i:03d}"
        path.write_bytes(block)
        paths.append(path)
    os.sync()  # the step's output is already written when ingest starts
    return paths


def make_small(directory, seed: int) -> None:
    directory.mkdir()
    block = bytearray(os.urandom(4096))
    for i in range(10_000):
        block[:16] = b"%08d%08d" % (seed, i)
        (directory / f"f{i:05d}").write_bytes(block)
    os.sync()


def main() -> None:
    work = scratch()
    try:
        hash_times, ingest_times = [], []
        for r in range(REPEATS):
            paths = make_big(work / f"big{r}", r)
            hash_times.append(timed(lambda: [hash_file(p) for p in paths]))
            store = Store.open(work / f"store{r}")
            store.objects.ensure_fanout()  # steady state: a store in use has its fan-out dirs
            ingest_times.append(timed(lambda: store.ingest(work / f"big{r}")))
            rmtree(work / f"store{r}")
            rmtree(work / f"big{r}")
        data = os.urandom(64 * MIB)
        memory = min(timed(lambda: [xxhash.xxh3_128(data).digest() for _ in range(16)]) for _ in range(3))
        hash_s, ingest_s = min(hash_times), min(ingest_times)
        emit("ingest_1gib_seconds", ingest_s)
        emit("hash_files_1gib_seconds", hash_s)
        emit("hash_memory_1gib_seconds", memory)
        emit("ingest_mib_per_s", 1024 / ingest_s)
        emit("hash_files_mib_per_s", 1024 / hash_s)
        emit("ratio_ingest_over_hash_files", ingest_s / hash_s)
        emit("ratio_ingest_over_hash_files_target", 1.3)
        emit("ratio_ingest_over_hash_memory", ingest_s / memory)

        small_times, small_hash = [], []
        for r in range(REPEATS):
            make_small(work / f"small{r}", 100 + r)
            names = sorted((work / f"small{r}").iterdir())
            small_hash.append(timed(lambda: [hash_file(p) for p in names]))
            store = Store.open(work / f"sstore{r}")
            store.objects.ensure_fanout()
            small_times.append(timed(lambda: store.ingest(work / f"small{r}")))
            rmtree(work / f"sstore{r}")
            rmtree(work / f"small{r}")
        emit("ingest_10k_4kib_seconds", min(small_times))
        emit("ingest_10k_4kib_files_per_s", 10_000 / min(small_times))
        emit("hash_10k_4kib_files_per_s", 10_000 / min(small_hash))
        emit("ratio_small_ingest_over_hash_files", min(small_times) / min(small_hash))
    finally:
        rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
