"""Push one successful run to the remote, in the order that makes a crash harmless.

1. HEAD ``runs/<fp>.json``: there already, stop (a second push of unchanged work makes 0 PUTs).
2. The tree's objects and large logs, in parallel, each written only if absent;
   one that exists but is older than half the gc grace is touched, so a
   concurrent ``remote gc`` cannot delete it under the record about to name it.
3. The tree.
4. The run record, **last**: the single commit point. A reader who sees a
   record can fetch everything it names; a push killed earlier leaves only
   unnamed content-addressed keys, which ``pipex remote gc`` removes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipex.errors import RemoteError
from pipex.remote.layout import (
    INLINE_LOG_BYTES,
    LogRef,
    encode_record,
    object_key,
    run_key,
    tree_key,
)
from pipex.store.runs import LOG_STREAMS

if TYPE_CHECKING:
    from pipex.remote.blobs import Blobs
    from pipex.remote.cache import RemoteCache
    from pipex.store.runs import RunRecord
    from pipex.store.store import Store
    from pipex.store.trees import Tree

__all__ = ["PushResult", "push_run", "push_tree", "DEFAULT_GRACE_SEC"]

DEFAULT_GRACE_SEC = 24 * 3600
_HEAD_FIRST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PushResult:
    """What one push did: whether the record was new, how many objects and bytes went up, how long it took."""

    run_id: str
    pushed: bool  # False: the remote had the run already
    objects: int = 0
    bytes: int = 0
    duration_ms: int = 0

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``REMOTE_PUSH`` events, ``pipex push --json``)."""
        return {"run": self.run_id, "pushed": self.pushed, "objects": self.objects, "bytes": self.bytes, "durationMs": self.duration_ms}


def push_run(remote: RemoteCache, store: Store, record: RunRecord, *, grace_sec: float = DEFAULT_GRACE_SEC) -> PushResult:
    """Push ``record`` (a successful, stable run with its objects here); RemoteError on failure.

    A run pulled from this remote is there already; a failed or unstable run
    (its id is not its fingerprint) is never pushed.
    """
    started = time.monotonic()
    meta = record.meta
    if not meta.succeeded or meta.fingerprint != record.run_id or meta.output_tree is None:
        raise RemoteError(f"run {record.run_id} is not a successful run; only those are pushed")
    blobs = remote.blobs
    if meta.pulled_from == remote.config.url or blobs.head(run_key(record.run_id)) is not None:
        return PushResult(record.run_id, False, duration_ms=_ms(started))
    remote.ensure_format_written()
    tree = store.read_tree(meta.output_tree)
    uploads = _tree_uploads(store, tree)
    logs: dict[str, LogRef] = {}
    for stream in LOG_STREAMS:
        path = record.log(stream)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if len(data) <= INLINE_LOG_BYTES:
            logs[stream] = LogRef(data=data)
        else:
            from pipex.store.objects import hash_bytes

            oid = hash_bytes(data)
            logs[stream] = LogRef(oid=oid, size=len(data))
            uploads.setdefault(oid, (str(path), len(data)))
    sent = _upload_objects(blobs, uploads, remote.config.jobs, grace_sec)
    blobs.put(tree_key(tree.tree_id), store.tree_path(tree.tree_id).read_bytes())
    clean = replace(meta, pulled_from=None, pushed_at=None, workspace=None)  # a workspace name is local
    blobs.put(run_key(record.run_id), encode_record(clean, logs, time.time()))
    return PushResult(record.run_id, True, sent[0], sent[1], _ms(started))


def push_tree(remote: RemoteCache, store: Store, tree_id: str, *, grace_sec: float = DEFAULT_GRACE_SEC) -> tuple[int, int]:
    """Push tree ``tree_id`` and its objects (no record): how a cluster build ships a project's mounts.

    Returns (objects, bytes) sent; RemoteError on failure. No record names
    such a tree, so ``pipex remote gc`` collects it after the grace period.
    """
    remote.ensure_format_written()
    tree = store.read_tree(tree_id)
    sent = _upload_objects(remote.blobs, _tree_uploads(store, tree), remote.config.jobs, grace_sec)
    remote.blobs.put(tree_key(tree_id), store.tree_path(tree_id).read_bytes())
    return sent


def _tree_uploads(store: Store, tree: Tree) -> dict[str, tuple[str, int]]:
    """Each object of ``tree`` -> (its path here, size); fetched first if a lazy pull left it on a remote."""
    store.ensure_objects(tree)  # a lazily pulled input run may lack objects another remote needs
    uploads: dict[str, tuple[str, int]] = {}
    for entry in tree.entries:
        if entry.oid is not None:
            uploads[entry.oid] = (os.fsdecode(store.object_path(entry)), entry.size)
    return uploads


def _upload_objects(blobs: Blobs, uploads: dict[str, tuple[str, int]], jobs: int, grace_sec: float) -> tuple[int, int]:
    """Upload what the remote lacks; touch what it has but may soon collect. Returns (objects, bytes) sent."""

    def one(item: tuple[str, tuple[str, int]]) -> int:
        oid, (path, size) = item
        key = object_key(oid)
        # A small object is simply PUT if absent (one request when new); a large one is
        # HEADed first, so bytes the remote has are not sent again.
        if size < _HEAD_FIRST_BYTES and blobs.put_file(key, path, size):
            return size
        info = blobs.head(key)
        if info is None:
            return size if blobs.put_file(key, path, size) else -1
        if time.time() - info.modified > grace_sec / 2:
            blobs.touch(key)  # it was there: keep it young, a record is about to name it
        return -1

    if not uploads:
        return 0, 0
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(uploads)))) as pool:
        sizes = [size for size in pool.map(one, uploads.items()) if size >= 0]
    return len(sizes), sum(sizes)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
