"""The Store: one content-addressed store on disk, and every verb that reads or writes it.

Layout (a directory, ``default_root()`` unless told otherwise)::

    store.json                 {"format": 1}; refuse to touch a store of a newer format
    objects/ab/cdef…[.x]       file contents by xxh3-128, read-only (see objects.py)
    trees/ab/cdef….json        canonical directory manifests (see trees.py)
    runs/<run_id>/             meta.json, stdout.log, stderr.log (see runs.py)
    workspaces/<ws>/…          workspace.json and ref symlinks: the gc roots (see refs.py)
    pins/<run_id>              runs kept by hand (also roots)
    checkouts/<tree_id>/       a tree as hard links to objects, read-only, made once
    staging/<prefix>-<pid>.<start>-<rand>/   work in progress of one live process
    caches/<ws>/<name>/        persistent read-write caches
    quarantine/                what ``verify --repair`` took out of service
    locks/                     store.lock and named locks (see locks.py)

Why this shape: every name that a reader can see is created by ``rename`` of
something complete (objects, trees, run directories, checkouts, ref links),
so a crash at any instant leaves only complete things plus garbage under
``staging/``. Staging names carry the owner's pid and start time (pid reuse
does not make a dead owner look alive); ``Store.open`` removes the staging of
owners that are gone. Everything else unreferenced is gc's.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING


from pipex.errors import StoreCorruptError, StoreError
from pipex.store import locks, refs, runs
from pipex.store._fs import (
    read_regular_file,
    rmtree,
    show_path,
    store_errors,
    write_atomic,
)
from pipex.store.objects import ObjectDB, is_oid
from pipex.store.owners import ProcessTmp, owner_token, parse_staging_owner, process_alive
from pipex.store.refs import check_name
from pipex.store.runs import RunMeta, RunRecord, check_run_id, load_meta
from pipex.store.trees import Tree, TreeEntry, decode_tree

if TYPE_CHECKING:
    from pipex.store.ingest import IngestResult

__all__ = ["Store", "default_root", "STORE_FORMAT"]

STORE_FORMAT = 1
_LAYOUT = ("objects", "trees", "runs", "workspaces", "pins", "checkouts", "staging", "caches", "quarantine", "locks")


def default_root(explicit: Path | None = None) -> Path:
    """The store root: ``explicit`` > ``$PIPEX_STORE`` > the user cache dir (``platformdirs``)."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("PIPEX_STORE")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only when no store is named

    return Path(platformdirs.user_cache_dir("pipex"))


class Store:
    """A content-addressed store rooted at ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        """Use ``Store.open``; this does no I/O."""
        self.root = root
        self._root_str = str(root)
        self._tmp = ProcessTmp(root / "staging")
        self.objects = ObjectDB(root / "objects", self._tmp)
        self.device = 0  # st_dev of objects/: ingest moves files from the same filesystem, copies others
        #: Set when staging of a dead process was seen: a killed build, whose
        #: containers may still be running (the next build removes them).
        self.found_stale_staging = False
        #: Fetches missing objects of a tree (a remote cache sets it; see ensure_objects).
        self.fetcher: Callable[[Store, Tree, list[TreeEntry]], None] | None = None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path | str, *, repair: bool = False) -> Store:
        """Open (creating the layout if needed) the store at ``root``; clear dead processes' staging.

        ``repair`` (``verify --repair``) rewrites a damaged ``store.json`` of a
        store whose layout is there, instead of refusing to open it.
        """
        root = Path(root).expanduser().absolute()
        if root.exists() and not root.is_dir():
            msg = f"cannot open the store at {root}: not a directory"
            raise StoreError(msg)
        with store_errors(f"cannot open the store at {root}"):
            root.mkdir(parents=True, exist_ok=True)
            root = root.resolve()
            store = cls(root)
            for name in _LAYOUT:
                # A read-only store can still be read: only create what is missing.
                if not (root / name).is_dir():
                    with contextlib.suppress(FileExistsError):
                        (root / name).mkdir()
            store._check_format(repair)
            store.device = os.stat(root / "objects").st_dev
        store.clear_stale_staging()
        return store

    def _check_format(self, repair: bool = False) -> None:
        marker = self.root / "store.json"
        try:
            doc = json.loads(read_regular_file(marker))
            fmt = doc.get("format") if isinstance(doc, dict) else None
        except FileNotFoundError:
            write_atomic(marker, json.dumps({"format": STORE_FORMAT}).encode(), Path(self.tmpdir()))
            return
        except (OSError, ValueError, UnicodeDecodeError):
            fmt = None
        if not isinstance(fmt, int):
            if repair:
                if not marker.is_symlink() and marker.is_dir():
                    rmtree(self.retire(marker))
                write_atomic(marker, json.dumps({"format": STORE_FORMAT}).encode(), Path(self.tmpdir()))
                return
            msg = f"{marker} is damaged; expected {{\"format\": {STORE_FORMAT}}}: run 'pipex verify --repair'"
            raise StoreCorruptError(msg)
        if fmt > STORE_FORMAT:
            msg = f"the store at {self.root} has format {fmt}; this pipex understands {STORE_FORMAT}: upgrade pipex"
            raise StoreError(msg)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- staging -----------------------------------------------------------------------------

    def clear_stale_staging(self) -> int:
        """Remove staging dirs whose owner process is gone; return how many. Errors are ignored."""
        removed = 0
        try:
            names = os.listdir(self.root / "staging")
        except OSError:
            return 0
        for name in names:
            owner = parse_staging_owner(name)
            if owner is None or process_alive(*owner):
                continue
            self.found_stale_staging = True
            # NOTE: any failure (another user's files, a damaged tree) leaves the
            # garbage for a later try; a clean-up must never stop the store opening.
            try:
                rmtree(self.root / "staging" / name)
            except Exception:  # noqa: BLE001 - see above
                continue
            removed += 1
        return removed

    @contextlib.contextmanager
    def staging_dir(self, prefix: str) -> Iterator[Path]:
        """A fresh directory under staging/ owned by this process, removed (even if read-only) on exit."""
        check_name(prefix, "staging prefix")
        with store_errors("cannot create a staging directory"):
            path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{owner_token()}-", dir=self.root / "staging"))
        try:
            yield path
        finally:
            # NOTE: files another user (a container's root) left behind cannot be
            # removed by us; they stay as staging garbage rather than turning a
            # finished build into a traceback. Store.open retries once we are gone.
            with contextlib.suppress(Exception):
                rmtree(path)

    def tmpdir(self) -> str:
        """This process's private temp dir under staging/ (same filesystem: renames into the store are atomic)."""
        return self._tmp.get()

    # -- locks -------------------------------------------------------------------------------

    def shared_lock(self, *, blocking: bool = True) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock shared (builds): gc waits until every holder is done."""
        return locks.hold_store(self.root / "locks", shared=True, blocking=blocking)

    def exclusive_lock(self, *, blocking: bool = True) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock exclusively (gc, verify --repair): no build runs meanwhile."""
        return locks.hold_store(self.root / "locks", shared=False, blocking=blocking)

    def lock(self, name: str, *, blocking: bool = True) -> contextlib.AbstractContextManager[None]:
        """A named cross-process exclusive lock; LockBusyError if ``blocking`` is False and it is held."""
        return locks.hold(locks.named_lock_path(self.root / "locks", name), blocking=blocking, what=f"lock {name!r}")

    # -- objects and trees -------------------------------------------------------------------

    def tree_path(self, tree_id: str) -> Path:
        """Where tree ``tree_id`` is stored."""
        return self.root / "trees" / tree_id[:2] / f"{tree_id[2:]}.json"

    def has_tree(self, tree_id: str) -> bool:
        """True if the tree file exists (not checked for damage)."""
        # Plain strings, not pathlib: a no-op plan asks this once per step.
        return is_oid(tree_id) and os.path.isfile(f"{self._root_str}/trees/{tree_id[:2]}/{tree_id[2:]}.json")

    def ingest(self, directory: Path) -> IngestResult:
        """Store the files, directories and links under ``directory``; return its tree (see ``ingest.ingest``)."""
        from pipex.store import ingest  # only builds ingest: a plan does not pay for it

        return ingest.ingest(self, directory)

    def add_tree(self, data: bytes) -> Tree:
        """Store tree bytes from elsewhere, checked like an ingested output (see ``ingest.add_tree``)."""
        from pipex.store import ingest

        return ingest.add_tree(self, data)

    def read_tree(self, tree_id: str) -> Tree:
        """Read and check tree ``tree_id``; StoreCorruptError if missing or damaged."""
        if not is_oid(tree_id):
            msg = f"invalid tree id {tree_id!r}"
            raise StoreError(msg)
        try:
            data = self.tree_path(tree_id).read_bytes()
        except FileNotFoundError:
            msg = f"tree {tree_id} is missing from the store; run 'pipex verify --repair'"
            raise StoreCorruptError(msg) from None
        except OSError as error:
            msg = f"cannot read tree {tree_id}: {error.strerror}"
            raise StoreError(msg) from error
        return decode_tree(tree_id, data)

    def object_path(self, entry: TreeEntry) -> bytes:
        """The path (bytes) of the object of file ``entry``."""
        assert entry.oid is not None
        return os.fsencode(self.objects.path(entry.oid, entry.executable))

    def open_object(self, entry: TreeEntry, tree_id: str) -> int:
        """An fd reading the object of file ``entry`` of tree ``tree_id``; StoreCorruptError naming it if missing."""
        try:
            # O_NOFOLLOW: an object is a plain file the store wrote; never a link to follow.
            return os.open(self.object_path(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.fetcher is None:
                raise self.missing_object(entry, tree_id) from None
        with store_errors(f"cannot fetch object {entry.oid}"):
            self.fetcher(self, Tree(tree_id, (entry,)), [entry])
        try:
            return os.open(self.object_path(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self.missing_object(entry, tree_id) from None
        except OSError as error:
            msg = f"cannot read object {entry.oid}: {error.strerror}"
            raise StoreError(msg) from None

    def ensure_objects(self, tree: Tree) -> None:
        """Fetch the objects ``tree`` names that are not here, through ``fetcher`` (a remote cache), in one batch.

        Without a fetcher nothing happens (a missing object is then damage,
        reported where it is read). A lazily pulled run's tree is here
        before its objects: checkout, export and cat call this first.
        """
        fetcher = self.fetcher
        if fetcher is None:
            return
        missing = [e for e in tree.entries if e.oid and not self.objects.present(e.oid, e.executable, e.size)]
        if missing:
            with store_errors(f"cannot fetch the objects of tree {tree.tree_id}"):  # a full disk: one line
                fetcher(self, tree, missing)

    def missing_object(self, entry: TreeEntry, tree_id: str) -> StoreCorruptError:
        """The error for a file whose object is missing, naming it and the repair."""
        where = f"{entry.oid} ({show_path(entry.path)!r} in tree {tree_id})"
        return StoreCorruptError(f"object {where} is missing; run 'pipex verify --repair'")

    def checkout_path(self, tree_id: str) -> Path:
        """Where the checkout of ``tree_id`` is (or would be)."""
        return self.root / "checkouts" / tree_id

    def checkout(self, tree_id: str) -> Path:
        """A read-only hard-link materialisation of ``tree_id`` under checkouts/, made once and reused."""
        from pipex.store import checkouts

        return checkouts.checkout(self, tree_id)

    def export(self, tree_id: str, dest: Path) -> None:
        """Materialise ``tree_id`` at ``dest`` as an independent copy with the recorded modes (see checkouts.export)."""
        from pipex.store import checkouts

        checkouts.export(self, tree_id, dest)

    # -- runs --------------------------------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        """Where run ``run_id`` is stored."""
        return self.root / "runs" / check_run_id(run_id)

    def sound_run(self, run_id: str) -> RunRecord | None:
        """Run ``run_id`` if it exists, its meta.json reads and its output tree is present; else None.

        THE test of a cache hit: the planner, the job runner and record_run ask it.
        """
        try:
            record = self.read_run(run_id)
        except StoreError:
            return None
        tree = record.output_tree
        return record if tree is None or self.has_tree(tree) else None

    def has_run(self, run_id: str) -> bool:
        """True if run ``run_id`` is sound (see ``sound_run``)."""
        return self.sound_run(run_id) is not None

    def record_run(self, run_id: str, meta: RunMeta, logs_dir: Path | None, *, replace: bool = False) -> RunRecord:
        """Store a run: meta.json plus the ``*.log`` files moved from ``logs_dir`` (see ``runs.record_run``)."""
        return runs.record_run(self, run_id, meta, logs_dir, replace=replace)

    def retire(self, path: Path) -> Path:
        """Rename ``path`` into this process's temp dir (an atomic disappearance); return where it went."""
        aside = Path(self.tmpdir()) / f"old-{path.name}-{os.urandom(4).hex()}"
        try:
            os.rename(path, aside)
        except PermissionError:
            # Moving a directory to another parent rewrites its "..": it must be
            # writable, and checkouts are 0555.
            os.chmod(path, 0o755)
            os.rename(path, aside)
        return aside

    def read_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; RunNotFoundError if absent, StoreCorruptError if damaged."""
        location = f"{self._root_str}/runs/{check_run_id(run_id)}"
        return RunRecord(run_id, location, load_meta(run_id, location))

    def run_log(self, run_id: str, stream: str) -> Path:
        """Path of a run's ``stdout.log`` or ``stderr.log``."""
        return self.read_run(run_id).log(stream)

    def runs(self) -> list[str]:
        """Every run id in the store, sorted."""
        with store_errors("cannot list runs"):
            return sorted(n for n in os.listdir(self.root / "runs") if not n.startswith("."))

    # -- refs and workspaces -----------------------------------------------------------------

    def set_ref(self, workspace: str, step: str, run_id: str, *, kind: str = "steps") -> None:
        """Point ``workspaces/<ws>/<kind>/<step>`` at run ``run_id`` (atomic symlink swap)."""
        refs.set_ref(self, workspace, step, run_id, kind=kind)

    def get_ref(self, workspace: str, step: str, *, kind: str = "steps") -> str | None:
        """The run id ``workspaces/<ws>/<kind>/<step>`` points at, or None."""
        return refs.read_link(refs.ref_dir(self.root, workspace, kind) / check_name(step, "step"))

    def remove_ref(self, workspace: str, step: str, *, kind: str = "steps") -> None:
        """Remove a ref; missing is fine."""
        refs.remove_ref(self, workspace, step, kind=kind)

    def workspaces(self) -> list[str]:
        """Names of the workspaces in the store, sorted."""
        return refs.workspaces(self.root)

    def workspace_refs(self, workspace: str, *, kind: str = "steps") -> dict[str, str]:
        """``{step: run_id}`` for a workspace's refs of ``kind``."""
        return {ref.step: ref.run_id for ref in refs.walk_refs(self.root, [workspace], (kind,)) if ref.run_id is not None}

    def create_workspace(self, workspace: str, project_root: Path) -> None:
        """Create (or adopt) a workspace and record the project root it belongs to."""
        refs.create_workspace(self, workspace, project_root)

    def workspace_project_root(self, workspace: str) -> Path | None:
        """The project root a workspace recorded, or None (no such workspace or none recorded)."""
        return refs.workspace_project_root(self.root, workspace)

    def remove_workspace(self, workspace: str) -> None:
        """Remove a workspace's refs and caches (its runs go at the next gc)."""
        refs.remove_workspace(self, workspace)

    def cache_dir(self, workspace: str, name: str) -> Path:
        """``caches/<ws>/<name>/``, created: a persistent read-write cache."""
        path = self.root / "caches" / check_name(workspace, "workspace") / check_name(name, "cache")
        with store_errors(f"cannot create cache {workspace}/{name}"):
            path.mkdir(parents=True, exist_ok=True)
        return path

    # -- pins --------------------------------------------------------------------------------

    def pin(self, run_id: str) -> None:
        """Keep run ``run_id`` (a gc root) until unpinned."""
        refs.pin(self, run_id)

    def unpin(self, run_id: str) -> None:
        """Stop keeping run ``run_id`` by hand; missing is fine."""
        refs.unpin(self.root, run_id)

    def pins(self) -> list[str]:
        """The pinned run ids, sorted."""
        return refs.pins(self.root)
