"""The remote cache as a build sees it: look a fingerprint up, adopt a hit into the local store, fetch objects.

A hit is adopted *lazily*: the record and the tree are fetched and checked
(the tree like an ingested output: hash, paths, links), the run is recorded
locally marked ``pulled_from``, and no file bytes move. Objects come when
something reads them (checkout of an input, ``cat``, ``export``) through
:meth:`RemoteCache.fetch_objects`, the store's fetcher, verified by hash.

The remote is a cache: an error is one warning and the build goes on locally,
unless ``required: true``. After the first failure to reach it, a command
stops asking (one warning, not one per step).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import PipexError, RemoteDeniedError, RemoteError, RemoteObjectError, StoreCorruptError
from pipex.remote.layout import FORMAT_KEY, RemoteRun, check_format_document, decode_record, object_key, run_key, tree_key

if TYPE_CHECKING:
    from pipex.remote.blobs import Blobs
    from pipex.remote.config import RemoteConfig
    from pipex.store.runs import RunRecord
    from pipex.store.store import Store
    from pipex.store.trees import Tree, TreeEntry

__all__ = ["FormatState", "RemoteCache"]


class FormatState:
    """Whether a remote's ``pipex-remote.json`` was checked and written (by this process)."""

    def __init__(self) -> None:
        """Neither yet."""
        self.checked = False
        self.written = False


class RemoteCache:
    """One command's view of one remote: lookups cached, failures turned into one warning."""

    def __init__(
        self,
        config: RemoteConfig,
        blobs: Blobs | None = None,
        *,
        warn: Callable[[str], None] | None = None,
        format_state: FormatState | None = None,
    ) -> None:
        """Nothing is imported or fetched until the first lookup (``blobs`` default: S3, through boto3).

        ``format_state``: shared by the caches of one process that talk to one
        remote (a cluster worker's jobs), so its format is read and written once.
        """
        self.config = config
        self._blobs = blobs
        self._warn = warn
        self.warnings: list[str] = []
        self._records: dict[str, RemoteRun | None] = {}
        self._format = format_state or FormatState()
        self.unreachable = False  # set at the first failure: later lookups are misses without a request
        self.read_only = False  # set when a write was refused: nothing more is pushed
        self._lock = threading.Lock()

    @property
    def used(self) -> bool:
        """True once a request was made (the client exists)."""
        return self._blobs is not None

    def requests(self) -> dict[str, int]:
        """Requests made and bytes moved so far (the build summary's ``remote``)."""
        c = self.blobs.counters
        return {"gets": c.gets, "heads": c.heads, "puts": c.puts, "lists": c.lists, "bytesIn": c.bytes_in, "bytesOut": c.bytes_out}

    @property
    def blobs(self) -> Blobs:
        """The object store client (made on first use)."""
        if self._blobs is None:
            from pipex.remote.s3 import S3Blobs

            self._blobs = S3Blobs(self.config)
        return self._blobs

    # -- failures ----------------------------------------------------------------------------

    def on_warning(self, report: Callable[[str], None]) -> None:
        """Report each warning (past and future) through ``report`` too (a build's WARNING events)."""
        self._warn = report
        for message in list(self.warnings):
            report(message)

    def warn(self, message: str) -> None:
        """Report ``message`` once."""
        with self._lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a RemoteError into a warning (and stop asking), or let it through when the remote is required."""
        try:
            yield
        except RemoteError as error:
            self.failed(error)

    def failed(self, error: RemoteError) -> None:
        """The remote failed: re-raise when it is required, else warn once and stop asking."""
        if self.config.required:
            raise error
        self.unreachable = True
        self.warn(f"{str(error).splitlines()[0]}; going on without the remote cache")

    def check_format(self) -> None:
        """Refuse (RemoteError) a remote of a newer format; read once per command."""
        if self._format.checked:
            return
        data = self.blobs.get(FORMAT_KEY)
        if data is not None:
            check_format_document(data, self.config.url)
        self._format.checked = True

    def ensure_format_written(self) -> None:
        """Write ``pipex-remote.json`` if this remote has none (once per command; a writer's first push)."""
        if self._format.written:
            return
        from pipex.remote.layout import format_document

        self.check_format()
        self.blobs.put(FORMAT_KEY, format_document())
        self._format.written = True

    # -- lookups -----------------------------------------------------------------------------

    def lookup(self, fingerprint: str) -> RemoteRun | None:
        """The remote's sound run record of ``fingerprint``, or None (a miss, or the remote unusable)."""
        if self.config.pull == "off" or self.unreachable:
            return None
        if fingerprint in self._records:
            return self._records[fingerprint]
        found: RemoteRun | None = None
        with self.guard():
            self.check_format()
            data = self.blobs.get(run_key(fingerprint))
            if data is not None:
                try:
                    found = decode_record(data, fingerprint)
                except RemoteError as error:
                    self.warn(str(error))
        self._records[fingerprint] = found
        return found

    def ask_again(self, fingerprint: str) -> None:
        """Drop what a lookup of ``fingerprint`` answered (a worker has pushed its run since)."""
        with self._lock:
            self._records.pop(fingerprint, None)

    def forget(self, fingerprint: str) -> None:
        """Treat ``fingerprint`` as a miss from now on (its record or tree proved unusable)."""
        self._records[fingerprint] = None

    def adopt(self, store: Store, fingerprint: str) -> RunRecord | None:
        """Record the remote run of ``fingerprint`` locally (lazily: tree and record, no object bytes).

        None when it cannot be used (a miss, an unreachable remote, a tree that
        is damaged or has a link out of the output): the caller runs the step.
        """
        found = self.lookup(fingerprint)
        if found is None:
            return None
        try:
            if not self.pull_tree(store, found.output_tree, f"remote run {fingerprint}"):
                self.forget(fingerprint)
                return None
            with store.staging_dir("pull") as staging:
                for stream, ref in found.logs.items():
                    text = ref.data if ref.data is not None else self._log_object(ref.oid, ref.size)
                    (staging / f"{stream}.log").write_bytes(text)
                meta = replace(found.meta, pulled_from=self.config.url, pushed_at=found.pushed_at)
                return store.record_run(fingerprint, meta, staging)
        except (RemoteError, StoreCorruptError) as error:
            if isinstance(error, RemoteError) and self.config.required:
                raise
            self.forget(fingerprint)
            self.warn(f"remote run {fingerprint} refused: {str(error).splitlines()[0]}; the step runs here")
            return None
        except PipexError as error:  # an unsafe tree (UnsafeOutputError) from the remote
            self.forget(fingerprint)
            self.warn(f"remote run {fingerprint} refused: {str(error).splitlines()[0]}; the step runs here")
            return None

    def pull_tree(self, store: Store, tree_id: str, named_by: str) -> bool:
        """Fetch tree ``tree_id`` (not its objects) into ``store``, checked like an output; False if refused.

        RemoteError when the remote lacks it (``named_by`` says who named it)
        or cannot be reached; an unsafe tree raises its PipexError.
        """
        if store.has_tree(tree_id):
            return True
        with self.guard():
            data = self.blobs.get(tree_key(tree_id))
            if data is None:
                raise RemoteError(f"{named_by} names tree {tree_id}, which is missing")
            store.add_tree(data)
        return store.has_tree(tree_id)

    def _log_object(self, oid: str | None, size: int) -> bytes:
        assert oid is not None
        data = self.blobs.get(object_key(oid))
        from pipex.store.objects import hash_bytes

        if data is None or len(data) != size or hash_bytes(data) != oid:
            raise RemoteError(f"remote log object {oid} is missing or damaged")
        return data

    # -- objects on demand -------------------------------------------------------------------

    def fetch_objects(self, store: Store, tree: Tree, entries: list[TreeEntry]) -> None:
        """The store's fetcher: get ``entries``' objects in parallel, each verified, or StoreCorruptError naming it."""
        unique: dict[tuple[str, bool], TreeEntry] = {}
        for entry in entries:
            assert entry.oid is not None
            unique.setdefault((entry.oid, entry.executable), entry)
        if not unique:
            return
        if self.unreachable:
            oid = str(entries[0].oid)
            raise RemoteObjectError(f"object {oid} of tree {tree.tree_id} is not here and the remote cannot be reached", oid)
        from concurrent.futures import ThreadPoolExecutor  # not on a plan's path: it costs 5 ms to import

        tmp_dir = store.tmpdir()
        with ThreadPoolExecutor(max_workers=min(self.config.jobs, len(unique))) as pool:
            list(pool.map(lambda e: self._fetch_one(store, tree, e, tmp_dir), unique.values()))

    def _fetch_one(self, store: Store, tree: Tree, entry: TreeEntry, tmp_dir: str) -> None:
        assert entry.oid is not None
        if store.objects.present(entry.oid, entry.executable, entry.size):
            return
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="fetch-", dir=tmp_dir)
        try:
            try:
                size = self.blobs.get_to(object_key(entry.oid), fd)
            finally:
                os.close(fd)
            where = f"{Path(os.fsdecode(entry.path))} in tree {tree.tree_id}"
            if size is None:
                raise RemoteObjectError(f"remote object {entry.oid} missing ({where})", entry.oid)
            try:
                store.objects.add_verified(tmp, entry.oid, entry.size, entry.executable)
            except StoreCorruptError as error:
                raise RemoteObjectError(f"remote object {entry.oid} damaged ({where}): {error}", entry.oid) from None
        except RemoteError as error:
            raise RemoteObjectError(f"cannot fetch object {entry.oid}: {str(error).splitlines()[0]}", entry.oid) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- writing -----------------------------------------------------------------------------

    def may_push(self, step_id: str) -> bool:
        """True if a successful run of ``step_id`` should be pushed now."""
        return self.config.pushes(step_id) and not self.read_only and not self.unreachable

    def denied(self, error: RemoteDeniedError) -> None:
        """Note that the credentials may not write: one line, then no more pushes."""
        self.read_only = True
        if self.config.push == "on" or self.config.required:
            self.warn(f"{str(error).splitlines()[0]}; nothing is pushed")
        else:
            self.warn(f"remote {self.config.url}: read-only credentials, pushing nothing")
