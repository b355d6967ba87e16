"""The remote-cache protocol against an in-memory remote: push order, crash points, races, hostile input."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from pipex.errors import RemoteDeniedError, RemoteError, UsageError
from pipex.remote.blobs import MemoryBlobs
from pipex.remote.cache import RemoteCache
from pipex.remote.config import remote_config
from pipex.remote.layout import FORMAT_KEY, encode_record, object_key, run_key, tree_key
from pipex.remote.push import push_run
from pipex.store.runs import RunMeta
from pipex.store.store import Store
from pipex.store.trees import EntryType, TreeEntry, encode_tree

URL = "s3://team-cache/ci"


def _cache(blobs: MemoryBlobs, **settings: object) -> RemoteCache:
    config = remote_config({"url": URL, **settings}, environ={})
    assert config is not None
    return RemoteCache(config, blobs)


def _run(store: Store, tmp: Path, name: str, files: dict[str, bytes], *, log: bytes = b"hi\n") -> str:
    """Record a successful run whose output holds ``files``; return its fingerprint."""
    out = tmp / f"out-{store.root.name}-{name}"
    out.mkdir()
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    tree = store.ingest(out)
    logs = tmp / f"logs-{store.root.name}-{name}"
    logs.mkdir()
    (logs / "stdout.log").write_bytes(log)
    fingerprint = (name * 32)[:32].encode().hex()[:32]
    meta = RunMeta(step=name, workspace="ws", fingerprint=fingerprint, output_tree=tree.tree_id, bytes=tree.bytes, files=tree.files)
    store.record_run(fingerprint, meta, logs)
    return fingerprint


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Store, Store]:
    return Store.open(tmp_path / "a"), Store.open(tmp_path / "b")


def test_a_pushed_run_is_adopted_elsewhere_without_object_bytes_then_fetched_on_read(stores, tmp_path: Path) -> None:
    a, b = stores
    blobs = MemoryBlobs()
    fp = _run(a, tmp_path, "a", {"x.txt": b"hello", "d/y.bin": os.urandom(3000)})
    result = push_run(_cache(blobs), a, a.read_run(fp))
    assert result.pushed and result.objects == 2
    reader = _cache(blobs)
    before = blobs.counters.gets
    record = reader.adopt(b, fp)
    assert record is not None and record.meta.pulled_from == URL
    assert blobs.counters.gets - before <= 3  # format, record, tree; no object
    assert not any(os.scandir(b.root / "objects" / p) for p in os.listdir(b.root / "objects"))
    assert record.log("stdout").read_bytes() == b"hi\n"
    b.fetcher = reader.fetch_objects
    assert (b.checkout(record.output_tree) / "x.txt").read_bytes() == b"hello"


def test_a_second_push_of_the_same_run_writes_nothing(stores, tmp_path: Path) -> None:
    a, _ = stores
    blobs = MemoryBlobs()
    fp = _run(a, tmp_path, "a", {"x": b"1"})
    push_run(_cache(blobs), a, a.read_run(fp))
    puts = blobs.counters.puts
    again = push_run(_cache(blobs), a, a.read_run(fp))
    assert not again.pushed and blobs.counters.puts == puts


@pytest.mark.parametrize("phase", ["objects/", "trees/", "runs/"])
def test_a_push_killed_at_any_phase_leaves_no_visible_run(stores, tmp_path: Path, phase: str) -> None:
    a, b = stores
    blobs = MemoryBlobs()
    fp = _run(a, tmp_path, "a", {"x": b"1", "y": b"2"})
    blobs.fail_put.add(phase)
    with pytest.raises(OSError):
        push_run(_cache(blobs), a, a.read_run(fp))
    assert _cache(blobs).lookup(fp) is None and _cache(blobs).adopt(b, fp) is None
    blobs.fail_put.clear()  # the next push completes it
    assert push_run(_cache(blobs), a, a.read_run(fp)).pushed
    assert _cache(blobs).adopt(b, fp) is not None


def test_a_reader_racing_pushes_never_sees_an_incomplete_run(tmp_path: Path) -> None:
    a = Store.open(tmp_path / "a")
    blobs = MemoryBlobs()
    fps = [_run(a, tmp_path, f"r{i}", {"f": os.urandom(100), "g": os.urandom(100)}) for i in range(20)]
    incomplete: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            for fp in fps:
                data = blobs.get(run_key(fp))
                if data is None:
                    continue
                meta = json.loads(data)["meta"]
                tree_data = blobs.get(tree_key(meta["output_tree"]))
                if tree_data is None:
                    incomplete.append(fp)
                    continue
                for entry in json.loads(tree_data)["entries"]:
                    if entry["type"] == "file" and blobs.get(object_key(entry["oid"])) is None:
                        incomplete.append(fp)

    thread = threading.Thread(target=reader)
    thread.start()
    for fp in fps:
        push_run(_cache(blobs), a, a.read_run(fp))
    done.set()
    thread.join()
    assert incomplete == []


def test_two_writers_of_one_fingerprint_with_different_bytes_leave_one_self_consistent_record(tmp_path: Path) -> None:
    one, two, reader_store = (Store.open(tmp_path / n) for n in ("1", "2", "r"))
    blobs = MemoryBlobs()
    fp1 = _run(one, tmp_path, "s", {"x": b"first writer"})
    fp2 = _run(two, tmp_path, "s", {"x": b"second writer, other bytes"})
    assert fp1 == fp2
    push_run(_cache(blobs), one, one.read_run(fp1))
    push_run(_cache(blobs), two, two.read_run(fp2))
    record = _cache(blobs).adopt(reader_store, fp1)
    assert record is not None
    reader_store.fetcher = _cache(blobs).fetch_objects
    assert (reader_store.checkout(record.output_tree) / "x").read_bytes() == b"first writer"


def _hostile_record(blobs: MemoryBlobs, entries: list[TreeEntry], fp: str = "e" * 32) -> str:
    tree_id, data = encode_tree(entries)
    blobs.put(tree_key(tree_id), data)
    meta = RunMeta(step="evil", fingerprint=fp, output_tree=tree_id)
    blobs.put(run_key(fp), encode_record(meta, {}, 1.0))
    return fp


def test_a_remote_tree_with_a_link_out_of_its_output_is_refused_at_pull(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    blobs = MemoryBlobs()
    fp = _hostile_record(blobs, [TreeEntry(b"d", EntryType.DIR, 0o755), TreeEntry(b"d/up", EntryType.LINK, target=b"../../etc")])
    cache = _cache(blobs)
    assert cache.adopt(store, fp) is None
    assert not store.runs() and any("links must stay inside" in w for w in cache.warnings)


def test_a_record_naming_another_fingerprint_or_garbage_is_a_miss(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    blobs = MemoryBlobs()
    _hostile_record(blobs, [TreeEntry(b"f", EntryType.FILE, 0o644, "a" * 32, 1)], fp="1" * 32)
    blobs.data[run_key("2" * 32)] = blobs.data[run_key("1" * 32)]  # a record copied under another name
    blobs.put(run_key("3" * 32), b"\xff not json")
    cache = _cache(blobs)
    assert cache.lookup("2" * 32) is None and cache.lookup("3" * 32) is None
    assert len(cache.warnings) == 2 and not store.runs()


def test_a_damaged_remote_object_is_refused_and_named(stores, tmp_path: Path) -> None:
    a, b = stores
    blobs = MemoryBlobs()
    fp = _run(a, tmp_path, "a", {"x": b"good bytes"})
    push_run(_cache(blobs), a, a.read_run(fp))
    key = next(k for k in blobs.data if k.startswith("objects/"))
    blobs.data[key] = (b"evil bytes", 0.0)
    cache = _cache(blobs)
    record = cache.adopt(b, fp)
    assert record is not None
    b.fetcher = cache.fetch_objects
    with pytest.raises(Exception, match="damaged") as raised:
        b.checkout(record.output_tree)
    assert key.replace("/", "")[len("objects"):] in str(raised.value)
    assert not (b.root / "checkouts" / str(record.output_tree)).exists()


def test_a_newer_remote_format_is_refused_in_one_line(tmp_path: Path) -> None:
    blobs = MemoryBlobs()
    blobs.put(FORMAT_KEY, b'{"format": 99, "hash": "xxh3-128"}')
    cache = _cache(blobs)
    assert cache.lookup("a" * 32) is None
    assert cache.warnings and "format 99" in cache.warnings[0] and "upgrade pipex" in cache.warnings[0]
    with pytest.raises(RemoteError, match="format 99"):
        _cache(blobs, required=True).lookup("a" * 32)


def test_read_only_credentials_push_nothing_and_say_so_once(stores, tmp_path: Path) -> None:
    a, _ = stores
    blobs = MemoryBlobs(writable=False)
    fp = _run(a, tmp_path, "a", {"x": b"1"})
    cache = _cache(blobs)
    with pytest.raises(RemoteDeniedError) as raised:
        push_run(cache, a, a.read_run(fp))
    cache.denied(raised.value)
    cache.denied(raised.value)
    assert cache.warnings == [f"remote {URL}: read-only credentials, pushing nothing"]
    assert not cache.may_push("a")


def test_failed_runs_are_never_pushed(stores, tmp_path: Path) -> None:
    a, _ = stores
    (tmp_path / "empty").mkdir()
    tree = a.ingest(tmp_path / "empty")
    from pipex.store.runs import RunStatus

    meta = RunMeta(step="s", fingerprint="f" * 32, status=RunStatus.FAILED, output_tree=tree.tree_id)
    a.record_run("f" * 32 + "-failed-1", meta, None)
    with pytest.raises(RemoteError, match="only those are pushed"):
        push_run(_cache(MemoryBlobs()), a, a.read_run("f" * 32 + "-failed-1"))


@pytest.mark.parametrize(
    "url, message",
    [("http://x", "use s3://bucket/prefix"), ("s3://A_B/x", "not an S3 bucket name"), ("s3://good-bucket/a//b", "empty")],
)
def test_a_bad_remote_url_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        remote_config(None, override=url, environ={})


def test_the_override_order_is_config_then_env_then_flag_and_off_turns_it_off() -> None:
    assert remote_config({"url": URL}, environ={}).url == URL  # type: ignore[union-attr]
    assert remote_config({"url": URL}, environ={"PIPEX_REMOTE": "s3://env-bucket"}).bucket == "env-bucket"  # type: ignore[union-attr]
    flag = remote_config({"url": URL}, override="s3://flag-bucket/p", environ={"PIPEX_REMOTE": "s3://env-bucket"})
    assert flag is not None and (flag.bucket, flag.prefix) == ("flag-bucket", "p/")
    assert remote_config({"url": URL}, override="off", environ={}) is None
    assert remote_config({"url": URL}, environ={"PIPEX_REMOTE": "off"}) is None
    assert remote_config(None, environ={}) is None
