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

import atexit
import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from pipex.errors import StoreCorruptError, StoreError
from pipex.store import locks
from pipex.store._fs import (
    copy_fd,
    exchange,
    fsync_dir,
    process_alive,
    process_start_time,
    read_regular_file,
    rmtree,
    show_path,
    store_errors,
    syncfs,
    write_atomic,
    write_temp,
)
from pipex.store.objects import ObjectDB, is_oid
from pipex.store.refs import REF_KINDS, check_kind, check_name, link_target, read_link
from pipex.store.runs import LOG_STREAMS, RunNotFoundError, RunRecord, check_run_id, load_meta
from pipex.store.trees import EntryType, Tree, TreeEntry, decode_tree, encode_tree, scan_output

__all__ = ["Store", "IngestResult", "default_root", "STORE_FORMAT"]

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


@dataclass(frozen=True)
class IngestResult:
    """What ingest stored: the tree id, how many regular files and how many bytes."""

    tree_id: str
    files: int
    bytes: int


def owner_token() -> str:
    """``<pid>.<start time>``: who owns a staging dir, robust to pid reuse."""
    pid = os.getpid()
    return f"{pid}.{process_start_time(pid) or 0}"


def owner_alive(token: str) -> bool:
    """Whether the process an ``owner_token()`` names still runs (a malformed token: no)."""
    pid, _, start = token.partition(".")
    if not pid.isdigit() or not start.isdigit():
        return False
    return process_alive(int(pid), int(start))


def container_owner_lives(labels: Mapping[str, str]) -> bool | None:
    """Whether the process that started a container (its ``pipex.owner`` label) still runs.

    None for a container of an older pipex, which carries no owner: the
    caller decides by its own rule. The one test of "is this a leftover".
    """
    owner = labels.get("pipex.owner")
    return owner_alive(owner) if owner else None


def parse_staging_owner(name: str) -> tuple[int, int] | None:
    """(pid, start time) from a staging dir name ``<prefix>-<pid>.<start>-<rand>``, or None."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3:
        return None
    pid, _, start = parts[1].partition(".")
    if not pid.isdigit() or not start.isdigit():
        return None
    return int(pid), int(start)


class _ProcessTmp:
    """This process's private temp dir under staging/, made on first use, removed at exit."""

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._dirs: dict[int, str] = {}

    def get(self) -> str:
        pid = os.getpid()  # a forked child must not share its parent's dir
        path = self._dirs.get(pid)
        if path is None:
            path = tempfile.mkdtemp(prefix=f"tmp-{owner_token()}-", dir=self._staging)
            self._dirs[pid] = path
            atexit.register(self._cleanup, pid, path)
        return path

    @staticmethod
    def _cleanup(pid: int, path: str) -> None:
        if os.getpid() == pid:
            with contextlib.suppress(OSError):
                rmtree(path)


class Store:
    """A content-addressed store rooted at ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        """Use ``Store.open``; this does no I/O."""
        self.root = root
        self._root_str = str(root)
        self._tmp = _ProcessTmp(root / "staging")
        self.objects = ObjectDB(root / "objects", self._tmp)
        self._dev = 0
        #: Set when staging of a dead process was seen: a killed build, whose
        #: containers may still be running (the next build removes them).
        self.found_stale_staging = False

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
            store._dev = os.stat(root / "objects").st_dev
        store.clear_stale_staging()
        return store

    def _check_format(self, repair: bool = False) -> None:
        marker = self.root / "store.json"
        try:
            doc = json.loads(read_regular_file(marker))
            fmt = doc.get("format") if isinstance(doc, dict) else None
        except FileNotFoundError:
            write_atomic(marker, json.dumps({"format": STORE_FORMAT}).encode(), Path(self._tmpdir()))
            return
        except (OSError, ValueError, UnicodeDecodeError):
            fmt = None
        if not isinstance(fmt, int):
            if repair:
                if not marker.is_symlink() and marker.is_dir():
                    rmtree(self._retire(marker))
                write_atomic(marker, json.dumps({"format": STORE_FORMAT}).encode(), Path(self._tmpdir()))
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

    def _tmpdir(self) -> str:
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
        """Store the files, directories and links under ``directory``; return its tree.

        Files are moved out of ``directory`` (renamed; copied when on another
        filesystem or when rename is refused). Nothing is changed if the output
        is refused (special files, links leaving it). Runs under the shared lock.
        """
        root_b = os.fsencode(directory)
        with self.shared_lock(), store_errors(f"cannot store {directory}"):
            st = os.stat(root_b)
            if not stat.S_ISDIR(st.st_mode):
                msg = f"cannot store {directory}: not a directory"
                raise StoreError(msg)
            scan = scan_output(root_b)
            copy = st.st_dev != self._dev
            entries: list[TreeEntry] = [TreeEntry(p, EntryType.DIR, mode) for p, mode in scan.dirs]
            entries += [TreeEntry(p, EntryType.LINK, target=t) for p, t in scan.links]
            total = 0
            for rel, path, lst in scan.files:
                mode = lst.st_mode & 0o777
                oid, size = self.objects.add_file(path, lst, bool(mode & 0o111), copy=copy)
                entries.append(TreeEntry(rel, EntryType.FILE, mode, oid, size))
                total += size
            tree_id, data = encode_tree(entries)
            self._write_tree(tree_id, data)
        return IngestResult(tree_id, len(scan.files), total)

    def _write_tree(self, tree_id: str, data: bytes) -> None:
        path = self.tree_path(tree_id)
        try:
            if path.read_bytes() == data:
                return
        except FileNotFoundError:
            path.parent.mkdir(exist_ok=True)
        # One syncfs makes the objects just moved in *and* the tree's temp file
        # durable (one journal commit); only then may the tree's name appear.
        tmp = write_temp(data, self._tmpdir(), sync=False)
        try:
            syncfs(self.root / "objects")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)

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

    def _object_path(self, entry: TreeEntry) -> bytes:
        assert entry.oid is not None
        return os.fsencode(self.objects.path(entry.oid, entry.executable))

    def open_object(self, entry: TreeEntry, tree_id: str) -> int:
        """An fd reading the object of file ``entry`` of tree ``tree_id``; StoreCorruptError naming it if missing."""
        try:
            # O_NOFOLLOW: an object is a plain file the store wrote; never a link to follow.
            return os.open(self._object_path(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._missing_object(entry, tree_id) from None
        except OSError as error:
            msg = f"cannot read object {entry.oid}: {error.strerror}"
            raise StoreError(msg) from None

    def _missing_object(self, entry: TreeEntry, tree_id: str) -> StoreCorruptError:
        msg = (
            f"object {entry.oid} ({show_path(entry.path)!r} in tree {tree_id}) is missing; "
            "run 'pipex verify --repair'"
        )
        return StoreCorruptError(msg)

    def checkout_path(self, tree_id: str) -> Path:
        """Where the checkout of ``tree_id`` is (or would be)."""
        return self.root / "checkouts" / tree_id

    def checkout(self, tree_id: str) -> Path:
        """A read-only hard-link materialisation of ``tree_id`` under checkouts/, made once and reused."""
        dest = self.checkout_path(tree_id)
        with self.shared_lock():
            if dest.is_dir():
                return dest
            tree = self.read_tree(tree_id)
            with store_errors(f"cannot check out tree {tree_id}"):
                tmp = tempfile.mkdtemp(prefix=f"checkout-{owner_token()}-", dir=self.root / "staging")
                try:
                    self._materialise(tree, os.fsencode(tmp))
                    syncfs(tmp)  # a checkout found after a power cut must be whole
                    try:
                        os.rename(tmp, dest)
                    except OSError as error:
                        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                            raise
                        # Another process checked out the same tree first: use theirs.
                    else:
                        os.chmod(dest, 0o555)
                finally:
                    rmtree(tmp)
        return dest

    def _materialise(self, tree: Tree, root: bytes) -> None:
        dirs: list[bytes] = []
        objects = os.fsencode(self.objects.root)
        for entry in tree.entries:
            path = root + b"/" + entry.path
            if entry.type is EntryType.FILE:
                oid = entry.oid
                assert oid is not None
                src = b"%s/%s/%s%s" % (objects, oid[:2].encode(), oid[2:].encode(), b".x" if entry.mode & 0o111 else b"")
                try:
                    os.link(src, path)
                except FileNotFoundError:
                    raise self._missing_object(entry, tree.tree_id) from None
                except OSError as error:
                    if error.errno != errno.EMLINK:
                        raise
                    # An inode has a link limit (65000 on ext4): past it, a read-only copy.
                    self._copy_object(src, path, 0o555 if entry.executable else 0o444)
            elif entry.type is EntryType.DIR:
                os.mkdir(path, 0o755)
                dirs.append(path)
            else:
                assert entry.target is not None
                os.symlink(entry.target, path)
        for path in reversed(dirs):
            os.chmod(path, 0o555)

    def _copy_object(self, src: bytes, dest: bytes, mode: int) -> None:
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            dst_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                copy_fd(src_fd, dst_fd)
                os.fchmod(dst_fd, mode)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def export(self, tree_id: str, dest: Path) -> None:
        """Materialise ``tree_id`` at ``dest`` as an independent copy with the recorded modes.

        ``dest`` may exist (a real directory, e.g. a step's output); existing
        names are never overwritten and links in ``dest`` are never followed.
        """
        tree = self.read_tree(tree_id)
        with self.shared_lock(), store_errors(f"cannot export tree {tree_id} to {dest}"):
            try:
                st = os.lstat(dest)
            except FileNotFoundError:
                os.makedirs(dest)
                st = os.lstat(dest)
            if not stat.S_ISDIR(st.st_mode):
                msg = f"cannot export tree {tree_id}: {dest} is not a directory"
                raise StoreError(msg)
            root = os.fsencode(dest)
            dirs: list[tuple[bytes, int]] = []
            for entry in tree.entries:
                path = root + b"/" + entry.path
                if entry.type is EntryType.DIR:
                    try:
                        os.mkdir(path, 0o700)
                    except FileExistsError:
                        if not stat.S_ISDIR(os.lstat(path).st_mode):
                            msg = f"cannot export tree {tree_id}: {show_path(path)!r} exists and is not a directory"
                            raise StoreError(msg) from None
                        continue  # someone else's directory: leave its mode alone
                    dirs.append((path, entry.mode))
                elif entry.type is EntryType.LINK:
                    assert entry.target is not None
                    os.symlink(entry.target, path)
                else:
                    src = self._object_path(entry)
                    try:
                        self._copy_object(src, path, entry.mode)
                    except FileNotFoundError as error:
                        if error.filename is not None and os.fsencode(error.filename) == src:
                            raise self._missing_object(entry, tree_id) from None
                        raise
            for path, mode in reversed(dirs):
                os.chmod(path, mode)

    # -- runs --------------------------------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        """Where run ``run_id`` is stored."""
        return self.root / "runs" / check_run_id(run_id)

    def _run_sound(self, run_id: str) -> bool:
        try:
            meta = load_meta(run_id, self.run_path(run_id))
        except StoreError:
            return False
        tree = meta.get("output_tree")
        return tree is None or self.has_tree(tree)

    def has_run(self, run_id: str) -> bool:
        """True if run ``run_id`` exists, its meta.json reads and its output tree is present."""
        return self._run_sound(run_id)

    def record_run(self, run_id: str, meta: dict[str, Any], logs_dir: Path | None, *, replace: bool = False) -> RunRecord:
        """Store a run: meta.json plus the ``*.log`` files moved from ``logs_dir``.

        Assembled in staging and renamed into runs/<run_id>; if a sound run of
        that id exists it is kept (and returned) and nothing is moved, unless
        ``replace`` (a forced run), which swaps the new run in atomically: a
        reader sees the old or the new record, never a mix or neither.
        """
        check_run_id(run_id)
        tree = meta.get("output_tree")
        if tree is not None and not self.has_tree(tree):
            msg = f"cannot record run {run_id}: its output_tree {tree!r} is not in the store"
            raise StoreError(msg)
        try:
            data = json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        except (TypeError, ValueError) as error:
            msg = f"cannot record run {run_id}: meta is not JSON ({error})"
            raise StoreError(msg) from None
        dest = self.run_path(run_id)
        with self.shared_lock(), store_errors(f"cannot record run {run_id}"):
            if not replace and self._run_sound(run_id):
                return self.read_run(run_id)
            tmp = Path(tempfile.mkdtemp(prefix=f"run-{owner_token()}-", dir=self.root / "staging"))
            try:
                os.rename(write_temp(data, tmp, sync=False), tmp / "meta.json")
                if logs_dir is not None:
                    for log in sorted(Path(logs_dir).glob("*.log")):
                        if log.is_file() and not log.is_symlink():
                            self._move_log(log, tmp / log.name)
                for stream in LOG_STREAMS:
                    with contextlib.suppress(FileExistsError):
                        os.close(os.open(tmp / f"{stream}.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
                syncfs(tmp)  # meta and logs durable before the run's name appears (one commit)
                if replace and dest.is_dir():
                    exchange(tmp, dest)  # tmp now holds the old run, removed below
                    fsync_dir(dest.parent)
                    return self.read_run(run_id)
                if dest.exists():
                    # A damaged run of this id (checked above): move it aside, keep the new one.
                    rmtree(self._retire(dest))
                try:
                    os.rename(tmp, dest)
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    fsync_dir(dest.parent)
            finally:
                rmtree(tmp)
            return self.read_run(run_id)

    def _move_log(self, src: Path, dest: Path) -> None:
        try:
            os.rename(src, dest)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES):
                raise
            self._copy_object(os.fsencode(src), os.fsencode(dest), 0o444)
            with contextlib.suppress(OSError):
                os.unlink(src)
            return
        with contextlib.suppress(OSError):
            os.chmod(dest, 0o444)

    def _retire(self, path: Path) -> Path:
        """Rename ``path`` into this process's temp dir (an atomic disappearance); return where it went."""
        aside = Path(self._tmpdir()) / f"old-{path.name}-{os.urandom(4).hex()}"
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
        path = self.run_path(run_id)
        return RunRecord(run_id, path, load_meta(run_id, path, f"{self._root_str}/runs/{run_id}/meta.json"))

    def run_log(self, run_id: str, stream: str) -> Path:
        """Path of a run's ``stdout.log`` or ``stderr.log``."""
        return self.read_run(run_id).log(stream)

    def runs(self) -> list[str]:
        """Every run id in the store, sorted."""
        with store_errors("cannot list runs"):
            return sorted(n for n in os.listdir(self.root / "runs") if not n.startswith("."))

    # -- refs and workspaces -----------------------------------------------------------------

    def _ref_dir(self, workspace: str, kind: str) -> Path:
        return self.root / "workspaces" / check_name(workspace, "workspace") / check_kind(kind)

    def set_ref(self, workspace: str, step: str, run_id: str, *, kind: str = "steps") -> None:
        """Point ``workspaces/<ws>/<kind>/<step>`` at run ``run_id`` (atomic symlink swap)."""
        check_name(step, "step")
        check_run_id(run_id)
        refs = self._ref_dir(workspace, kind)
        with self.shared_lock(), store_errors(f"cannot set ref {workspace}/{kind}/{step}"):
            if not (self.run_path(run_id) / "meta.json").is_file():
                msg = f"cannot point {workspace}/{kind}/{step} at run {run_id}: no such run"
                raise RunNotFoundError(msg)
            refs.mkdir(parents=True, exist_ok=True)
            tmp = os.path.join(self._tmpdir(), f"ref-{step}-{os.urandom(4).hex()}")
            os.symlink(link_target(run_id), tmp)
            try:
                os.rename(tmp, refs / step)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            fsync_dir(refs)

    def get_ref(self, workspace: str, step: str, *, kind: str = "steps") -> str | None:
        """The run id ``workspaces/<ws>/<kind>/<step>`` points at, or None."""
        return read_link(self._ref_dir(workspace, kind) / check_name(step, "step"))

    def remove_ref(self, workspace: str, step: str, *, kind: str = "steps") -> None:
        """Remove a ref; missing is fine."""
        refs = self._ref_dir(workspace, kind)
        with store_errors(f"cannot remove ref {workspace}/{kind}/{step}"):
            path = refs / check_name(step, "step")
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            except IsADirectoryError:
                rmtree(self._retire(path))  # damage: a directory where the link belongs
            fsync_dir(refs)

    def workspaces(self) -> list[str]:
        """Names of the workspaces in the store, sorted."""
        with store_errors("cannot list workspaces"):
            base = self.root / "workspaces"
            return sorted(n for n in os.listdir(base) if not n.startswith(".") and (base / n).is_dir())

    def workspace_refs(self, workspace: str, *, kind: str = "steps") -> dict[str, str]:
        """``{step: run_id}`` for a workspace's refs of ``kind``."""
        refs = self._ref_dir(workspace, kind)
        try:
            names = os.listdir(refs)
        except FileNotFoundError:
            return {}
        out = {}
        for name in sorted(names):
            run_id = read_link(refs / name)
            if run_id is not None:
                out[name] = run_id
        return out

    def create_workspace(self, workspace: str, project_root: Path) -> None:
        """Create (or adopt) a workspace and record the project root it belongs to."""
        base = self.root / "workspaces" / check_name(workspace, "workspace")
        doc = {"project_root": os.fsdecode(Path(project_root).resolve())}
        with store_errors(f"cannot create workspace {workspace}"):
            for kind in REF_KINDS:
                (base / kind).mkdir(parents=True, exist_ok=True)
            write_atomic(base / "workspace.json", json.dumps(doc).encode(), Path(self._tmpdir()), mode=0o644)

    def workspace_project_root(self, workspace: str) -> Path | None:
        """The project root a workspace recorded, or None (no such workspace or none recorded)."""
        path = self.root / "workspaces" / check_name(workspace, "workspace") / "workspace.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            msg = f"{path} is damaged; remove it or run 'pipex verify --repair'"
            raise StoreCorruptError(msg) from None
        root = doc.get("project_root") if isinstance(doc, dict) else None
        return Path(root) if isinstance(root, str) else None

    def remove_workspace(self, workspace: str) -> None:
        """Remove a workspace's refs and caches (its runs go at the next gc)."""
        check_name(workspace, "workspace")
        with self.shared_lock(), store_errors(f"cannot remove workspace {workspace}"):
            for base in (self.root / "workspaces", self.root / "caches"):
                path = base / workspace
                if path.exists():
                    rmtree(self._retire(path))
                    fsync_dir(base)

    def cache_dir(self, workspace: str, name: str) -> Path:
        """``caches/<ws>/<name>/``, created: a persistent read-write cache."""
        path = self.root / "caches" / check_name(workspace, "workspace") / check_name(name, "cache")
        with store_errors(f"cannot create cache {workspace}/{name}"):
            path.mkdir(parents=True, exist_ok=True)
        return path

    # -- pins --------------------------------------------------------------------------------

    def pin(self, run_id: str) -> None:
        """Keep run ``run_id`` (a gc root) until unpinned."""
        with self.shared_lock(), store_errors(f"cannot pin run {run_id}"):
            if not (self.run_path(run_id) / "meta.json").is_file():
                msg = f"cannot pin run {run_id}: no such run"
                raise RunNotFoundError(msg)
            fd = os.open(self.root / "pins" / run_id, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.close(fd)
            fsync_dir(self.root / "pins")

    def unpin(self, run_id: str) -> None:
        """Stop keeping run ``run_id`` by hand; missing is fine."""
        with store_errors(f"cannot unpin run {run_id}"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / "pins" / check_run_id(run_id))

    def pins(self) -> list[str]:
        """The pinned run ids, sorted."""
        with store_errors("cannot list pins"):
            return sorted(n for n in os.listdir(self.root / "pins") if not n.startswith("."))
