"""``pipex remote gc`` and ``pipex remote verify``: keeping a shared remote small and sound.

gc: delete records older than ``older_than``; mark what the others name
(their trees, the trees' objects, their log objects); delete unmarked trees
and objects older than ``grace``, and leftovers of killed pushes and status
probes. Never an S3 expiry rule on ``objects/`` or ``trees/``: deduplication
means an old object may be named by a record pushed today. A push in flight
is safe: what it uploads is younger than the grace, and what it relies on
that is older than half the grace it touches first (``pipex.remote.push``).

verify: every record must decode and name a tree whose bytes hash to its id
and pass the ingest checks; every object a tree names must be listed with
its size; ``sample`` objects are downloaded and hashed as well.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipex.errors import PipexError, RemoteError
from pipex.remote.layout import decode_record, object_key, tree_key

if TYPE_CHECKING:
    from pipex.remote.blobs import BlobInfo, Blobs
    from pipex.remote.cache import RemoteCache

__all__ = ["RemoteGcReport", "RemoteVerifyReport", "remote_gc", "remote_verify", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str) -> float:
    """``30d``, ``24h``, ``90m``, ``45s`` or plain seconds -> seconds; PipexError naming ``what`` otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1
    if seconds < 0 or seconds != seconds:
        raise PipexError(f"invalid {what} {text!r}: use a number with s, m, h, d or w (e.g. 30d)")
    return seconds


@dataclass
class RemoteGcReport:
    """What remote gc deleted (or, dry run, would delete) and kept."""

    dry_run: bool
    runs_deleted: int = 0
    runs_kept: int = 0
    trees_deleted: int = 0
    objects_deleted: int = 0
    bytes_deleted: int = 0
    other_deleted: int = 0  # probes and records that do not decode
    uploads_aborted: int = 0  # multipart uploads of pushes killed before they completed
    trees_kept: int = 0
    objects_kept: int = 0


def _sound_record(blobs: Blobs, info: BlobInfo) -> tuple[str, list[str]] | None:
    """(tree id, log object ids) of the record at ``info``; None when it cannot be read as one."""
    fingerprint = info.key.removeprefix("runs/").removesuffix(".json")
    data = blobs.get(info.key)
    if data is None:
        return None
    try:
        record = decode_record(data, fingerprint)
    except RemoteError:
        return None
    return record.output_tree, [ref.oid for ref in record.logs.values() if ref.oid]


def remote_gc(cache: RemoteCache, *, older_than: float, grace: float, dry_run: bool = False) -> RemoteGcReport:
    """Collect the remote (see the module docstring); RemoteError if it cannot be listed or written."""
    blobs = cache.blobs
    cache.check_format()
    now = time.time()
    report = RemoteGcReport(dry_run=dry_run)
    doomed: list[str] = []
    marked_trees: set[str] = set()
    marked_objects: set[str] = set()
    for info in list(blobs.list_keys("runs/")):
        if now - info.modified > older_than:
            doomed.append(info.key)
            report.runs_deleted += 1
            continue
        named = _sound_record(blobs, info)
        if named is None:
            if now - info.modified > grace:
                doomed.append(info.key)
                report.other_deleted += 1
            continue
        report.runs_kept += 1
        tree_id, logs = named
        marked_trees.add(tree_key(tree_id))
        marked_objects.update(object_key(oid) for oid in logs)
    for key in marked_trees:
        data = blobs.get(key)
        if data is None:
            continue
        try:
            entries = json.loads(data)["entries"]
            marked_objects.update(object_key(e["oid"]) for e in entries if e.get("type") == "file")
        except (ValueError, KeyError, TypeError):
            continue  # a damaged tree: its record is unusable; verify reports it
    for prefix, marked in (("trees/", marked_trees), ("objects/", marked_objects)):
        for info in blobs.list_keys(prefix):
            if info.key in marked or now - info.modified <= grace:
                if prefix == "trees/":
                    report.trees_kept += 1
                else:
                    report.objects_kept += 1
                continue
            doomed.append(info.key)
            if prefix == "trees/":
                report.trees_deleted += 1
            else:
                report.objects_deleted += 1
                report.bytes_deleted += info.size
    for info in blobs.list_keys("probes/"):
        if now - info.modified > 3600:
            doomed.append(info.key)
            report.other_deleted += 1
    for prefix in ("jobs/", "results/"):  # cluster builds' jobs and answers: needed only while the build runs
        for info in blobs.list_keys(prefix):
            if now - info.modified > grace:
                doomed.append(info.key)
                report.other_deleted += 1
    report.uploads_aborted = blobs.abort_uploads(grace, dry_run=dry_run)
    if not dry_run and doomed:
        # Records first: at every instant what a visible record names is still there.
        doomed.sort(key=lambda key: not key.startswith("runs/"))
        blobs.delete(doomed)
    return report


@dataclass
class RemoteVerifyReport:
    """What remote verify checked and the problems it found (each names the key)."""

    runs: int = 0
    trees: int = 0
    objects: int = 0
    sampled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def remote_verify(cache: RemoteCache, *, sample: int = 0) -> RemoteVerifyReport:
    """Check every record, the trees they name and the objects those name (see the module docstring)."""
    from pipex.store.objects import hash_bytes
    from pipex.store.trees import check_tree_links, decode_tree

    blobs = cache.blobs
    cache.check_format()
    report = RemoteVerifyReport()
    sizes = {info.key: info.size for info in blobs.list_keys("objects/")}
    wanted: dict[str, int] = {}
    for info in blobs.list_keys("runs/"):
        report.runs += 1
        fingerprint = info.key.removeprefix("runs/").removesuffix(".json")
        data = blobs.get(info.key)
        try:
            record = decode_record(data or b"", fingerprint)
        except RemoteError as error:
            report.problems.append(f"{info.key}: {error}")
            continue
        key = tree_key(record.output_tree)
        tree_data = blobs.get(key)
        if tree_data is None:
            report.problems.append(f"{info.key}: names tree {record.output_tree}, which is missing")
            continue
        report.trees += 1
        try:
            tree = decode_tree(record.output_tree, tree_data)
            check_tree_links(tree)
        except PipexError as error:
            report.problems.append(f"{key}: {str(error).splitlines()[0]}")
            continue
        for entry in tree.entries:
            if entry.oid is not None:
                wanted[object_key(entry.oid)] = entry.size
        for ref in record.logs.values():
            if ref.oid:
                wanted[object_key(ref.oid)] = ref.size
    for key, size in sorted(wanted.items()):
        report.objects += 1
        if key not in sizes:
            report.problems.append(f"{key}: missing (named by a run)")
        elif sizes[key] != size:
            report.problems.append(f"{key}: {sizes[key]} bytes, the tree says {size}")
    present = [key for key in sorted(wanted) if key in sizes]
    for key in random.sample(present, min(sample, len(present))):
        report.sampled += 1
        data = blobs.get(key)
        oid = key.removeprefix("objects/").replace("/", "")
        if data is None or hash_bytes(data) != oid:
            report.problems.append(f"{key}: content does not hash to its name")
    return report
