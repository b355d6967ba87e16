"""remote gc and remote verify against an in-memory remote: what goes, what stays, what is reported."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipex.errors import PipexError
from pipex.remote.blobs import MemoryBlobs
from pipex.remote.cache import RemoteCache
from pipex.remote.config import remote_config
from pipex.remote.push import push_run
from pipex.remote.upkeep import parse_duration, remote_gc, remote_verify
from pipex.store.runs import RunMeta
from pipex.store.store import Store

DAY = 86400.0


def _cache(blobs: MemoryBlobs) -> RemoteCache:
    config = remote_config({"url": "s3://team-cache/ci"}, environ={})
    assert config is not None
    return RemoteCache(config, blobs)


def _push(store: Store, blobs: MemoryBlobs, tmp: Path, name: str, files: dict[str, bytes], *, log: bytes = b"") -> str:
    out = tmp / f"out-{name}"
    out.mkdir()
    for rel, data in files.items():
        (out / rel).write_bytes(data)
    tree = store.ingest(out)
    logs = tmp / f"logs-{name}"
    logs.mkdir()
    (logs / "stdout.log").write_bytes(log)
    fp = name.encode().hex().ljust(32, "0")[:32]
    store.record_run(fp, RunMeta(step=name, fingerprint=fp, output_tree=tree.tree_id), logs)
    push_run(_cache(blobs), store, store.read_run(fp))
    return fp


def _age(blobs: MemoryBlobs, prefix: str, seconds: float) -> None:
    for key, (data, modified) in list(blobs.data.items()):
        if key.startswith(prefix):
            blobs.data[key] = (data, modified - seconds)


def test_gc_deletes_old_records_then_what_only_they_named_and_keeps_what_a_young_record_shares(tmp_path: Path) -> None:
    store, blobs = Store.open(tmp_path / "s"), MemoryBlobs()
    old = _push(store, blobs, tmp_path, "old", {"shared": b"both name me", "mine": b"only old", "big": os.urandom(10000)}, log=b"x" * 9000)
    _age(blobs, "", 40 * DAY)
    young = _push(store, blobs, tmp_path, "young", {"shared": b"both name me"})
    dry = remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY, dry_run=True)
    assert (dry.runs_deleted, dry.runs_kept, dry.objects_deleted) == (1, 1, 3)  # mine, big, the large log
    assert f"runs/{old}.json" in blobs.data  # a dry run deletes nothing
    report = remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY)
    assert report.objects_deleted == 3 and report.trees_deleted == 1
    assert f"runs/{old}.json" not in blobs.data and f"runs/{young}.json" in blobs.data
    reader = Store.open(tmp_path / "r")
    cache = _cache(blobs)
    record = cache.adopt(reader, young)
    assert record is not None
    reader.fetcher = cache.fetch_objects
    assert (reader.checkout(record.output_tree) / "shared").read_bytes() == b"both name me"
    assert remote_verify(_cache(blobs)).ok


def test_gc_keeps_unnamed_objects_younger_than_the_grace_a_push_in_flight(tmp_path: Path) -> None:
    store, blobs = Store.open(tmp_path / "s"), MemoryBlobs()
    fp = _push(store, blobs, tmp_path, "a", {"f": b"in flight"})
    del blobs.data[f"runs/{fp}.json"]  # a push killed before its record: objects and tree unnamed
    kept = remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY)
    assert kept.objects_deleted == 0 and kept.objects_kept == 1
    _age(blobs, "", 2 * DAY)
    gone = remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY)
    assert (gone.objects_deleted, gone.trees_deleted) == (1, 1)
    assert [k for k in blobs.data if not k.startswith("pipex-remote")] == []


def test_a_push_touches_an_old_object_it_relies_on_so_gc_keeps_it(tmp_path: Path) -> None:
    store, blobs = Store.open(tmp_path / "s"), MemoryBlobs()
    _push(store, blobs, tmp_path, "a", {"f": b"shared bytes"})
    _age(blobs, "", 40 * DAY)
    _push(store, blobs, tmp_path, "b", {"f": b"shared bytes"})  # names the old object: touches it
    key = next(k for k in blobs.data if k.startswith("objects/"))
    assert time.time() - blobs.data[key][1] < 60
    remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY)
    assert key in blobs.data


def test_verify_names_a_missing_object_a_wrong_size_and_a_bad_hash(tmp_path: Path) -> None:
    store, blobs = Store.open(tmp_path / "s"), MemoryBlobs()
    _push(store, blobs, tmp_path, "a", {"one": b"1111", "two": b"2222", "three": b"3333"})
    keys = sorted(k for k in blobs.data if k.startswith("objects/"))
    del blobs.data[keys[0]]
    blobs.data[keys[1]] = (b"22", 0.0)
    blobs.data[keys[2]] = (b"9999", 0.0)  # same size, other bytes: only a hash finds it
    plain = remote_verify(_cache(blobs))
    assert len(plain.problems) == 2 and "missing" in " ".join(plain.problems)
    hashed = remote_verify(_cache(blobs), sample=10)
    assert any(keys[2] in p and "hash" in p for p in hashed.problems)


@pytest.mark.parametrize("text, seconds", [("30d", 30 * DAY), ("24h", DAY), ("90m", 5400), ("45", 45), ("1w", 7 * DAY)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--grace") == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "3x", "nan"])
def test_a_bad_duration_is_one_clear_error(text: str) -> None:
    with pytest.raises(PipexError, match="invalid --grace"):
        parse_duration(text, "--grace")


def test_gc_collects_cluster_jobs_and_answers_past_the_grace_and_keeps_a_running_builds() -> None:
    blobs = MemoryBlobs()
    for key in ("jobs/old/s-1.json", "results/old/s-1.json", "results/old/s-1.logs.json"):
        blobs.put(key, b"{}")
    _age(blobs, "", 2 * DAY)
    blobs.put("jobs/live/s-2.json", b"{}")
    blobs.put("results/live/s-2.json", b"{}")
    report = remote_gc(_cache(blobs), older_than=30 * DAY, grace=DAY)
    assert report.other_deleted == 3
    assert sorted(k for k in blobs.data if k.startswith(("jobs/", "results/"))) == ["jobs/live/s-2.json", "results/live/s-2.json"]
