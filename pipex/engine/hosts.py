"""Host paths (``mounts``/``sources``) hashed through a persistent stat cache, and re-checked after a run.

Host trees and the stat cache
-----------------------------
A ``mounts``/``sources`` host path (a directory or a single file) is hashed as
the xxh3-128 of a canonical listing of its entries, relative to that path:
``[path, kind, value]`` sorted by path, where kind is ``f`` (file, value = object
id), ``x`` (executable file), ``l`` (symlink, value = link target, never
followed) or ``o`` (fifo/socket/device, no value). Empty directories are not
recorded (as in git). File object ids are the store's ids (xxh3-128 of the
bytes), so a host file and a stored output with the same bytes share an id.

On-disk stat cache: ``<store>/statcache/<xxh3 of the project root>.marshal``,
one file per project, holding ``{host path: (tree hash, {file: (size, mtime_ns,
ino, ctime_ns, oid)}, {file: value not cached by stat})}`` -- the last state
each host path was seen in, complete (links, special and racy files are in
the third dict)
behind a magic line. It is written temp-file + ``os.replace`` only when it
changed, loaded once per process. ``marshal`` because loading 100k entries
takes ~20 ms (sqlite needs one query per file; pickle is slower). It is a
cache: a missing, foreign or damaged file is ignored and rebuilt. ``ctime``
is in the key as in git: tools that restore mtimes (``cp -p``, ``rsync -a``,
``touch -r``) cannot make an edit look unchanged. A file whose mtime or ctime
is within ``_RACY_NS`` of the moment it was hashed is not cached (git's
"racily clean" problem: an edit in the same timestamp tick would go unnoticed).

Next to it, ``<project key>.manifests/<tree hash>.marshal`` keeps file
listings of *earlier* states, so the planner can name the files that changed
since the last build. When a path's tree hash differs from the one in the stat
cache, the listing of the state it replaces is written there (derived from
the cache record, no file is read); a project that does not change, or is
hashed for the first time, writes none. The oldest are pruned beyond
``max(_MAX_MANIFESTS, 4 x paths)``; when the old listing is gone the planner
says "mount X changed" instead.
"""

from __future__ import annotations

import marshal
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import xxhash

from pipex.errors import HostPathError, PipexError
from pipex.store.objects import hash_file

__all__ = ["HostTree", "HostHasher", "diff_files", "changed_host_files"]

_STATCACHE_MAGIC = b"pipex-statcache 4\n"
_RACY_NS = 2_000_000_000
_MAX_MANIFESTS = 256


@dataclass(frozen=True)
class HostTree:
    """A hashed host path: its tree hash and each file's object id.

    ``files`` is keyed by project-relative POSIX path; the value is the object
    id, ``"l:<target>"`` for a symlink, ``"d:"`` for a directory or ``"o:"``
    for a special file.
    """

    path: str
    tree_hash: str
    files: Mapping[str, str] = field(repr=False)


# One stat-cache entry: (size, mtime_ns, ino, ctime_ns, oid).
_Entry = tuple[int, int, int, int, str]
# What the stat cache keeps per host path: (tree hash, cached entries, the rest of the listing).
_Record = tuple[str, dict[str, _Entry], dict[str, str]]


class HostHasher:
    """Hashes host paths of one project through a persistent stat cache.

    Create one per process and project; call ``save()`` when done (the
    planner and the job runner do). ``last`` keeps the trees hashed in this process
    so ``changed_host_files`` can re-check them after a step ran.
    """

    def __init__(self, project_root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> None:
        """Hash paths under ``project_root``; keep the stat cache in ``cache_dir`` (``None``: memory only)."""
        self.root = Path(project_root)
        self._cache_file: Path | None = None
        self._manifest_dir: Path | None = None
        if cache_dir is not None:
            key = xxhash.xxh3_128_hexdigest(os.fsencode(os.path.abspath(self.root)))
            self._cache_file = Path(cache_dir) / f"{key}.marshal"
            self._manifest_dir = Path(cache_dir) / f"{key}.manifests"
        self._cache: dict[str, _Record] | None = None
        self._wrote_manifests = False
        self._dirty = False
        self.last: dict[str, HostTree] = {}
        # Every listing hashed in this process, by tree hash, for explanations and rechecks.
        self._listings: dict[str, Mapping[str, str]] = {}
        # The runner hashes from several threads; loading must happen once.
        self._load_lock = threading.Lock()
        # Counters, read by tests and benchmarks.
        self.files_read = 0

    @classmethod
    def for_store(cls, store_root: str | os.PathLike[str], project_root: str | os.PathLike[str]) -> HostHasher:
        """Return a hasher whose stat cache lives in ``<store_root>/statcache/``."""
        return cls(project_root, Path(store_root) / "statcache")

    # -- the on-disk cache -------------------------------------------------

    def _load(self) -> dict[str, _Record]:
        if self._cache is not None:
            return self._cache
        with self._load_lock:
            return self._load_locked()

    def _load_locked(self) -> dict[str, _Record]:
        if self._cache is None:
            self._cache = {}
            if self._cache_file is not None:
                try:
                    data = self._cache_file.read_bytes()
                    if data.startswith(_STATCACHE_MAGIC):
                        loaded = marshal.loads(data[len(_STATCACHE_MAGIC) :])
                        if isinstance(loaded, dict):
                            self._cache = loaded
                except (OSError, ValueError, EOFError, TypeError):
                    pass  # a cache: missing or damaged means start empty
        return self._cache

    def save(self) -> None:
        """Write the stat cache if it changed (temp file + rename; errors are ignored: it is a cache)."""
        if self._wrote_manifests:
            self._prune_manifests()
        if not self._dirty or self._cache_file is None or self._cache is None:
            return
        data = _STATCACHE_MAGIC + marshal.dumps(self._cache)
        _write_atomic(self._cache_file, data)
        self._dirty = False

    def _save_manifest(self, tree_hash: str, files: Mapping[str, str]) -> None:
        if self._manifest_dir is None:
            return
        target = self._manifest_dir / f"{tree_hash}.marshal"
        if target.exists():
            return
        _write_atomic(target, marshal.dumps(dict(files)))
        self._wrote_manifests = True

    def _prune_manifests(self) -> None:
        self._wrote_manifests = False
        if self._manifest_dir is None:
            return
        keep = max(_MAX_MANIFESTS, 4 * len(self._cache or ()))
        try:
            entries = list(os.scandir(self._manifest_dir))
            if len(entries) > keep:
                entries.sort(key=lambda e: e.stat().st_mtime_ns)
                for entry in entries[: len(entries) - keep]:
                    os.unlink(entry.path)
        except OSError:
            pass

    def manifest(self, tree_hash: str) -> dict[str, str] | None:
        """Return the file listing of a tree hashed earlier on this machine, or ``None`` if it is gone."""
        if tree_hash in self._listings:
            return dict(self._listings[tree_hash])
        for rel_path, record in self._load().items():
            if isinstance(record, tuple) and len(record) == 3 and record[0] == tree_hash:
                return _listing(rel_path, record)
        if self._manifest_dir is None:
            return None
        try:
            loaded = marshal.loads((self._manifest_dir / f"{tree_hash}.marshal").read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return loaded if isinstance(loaded, dict) else None

    # -- hashing -------------------------------------------------------------

    def hash_tree(self, rel_path: str) -> HostTree:
        """Hash a project-relative host path (directory or file); raise HostPathError if it is missing."""
        cache = self._load()
        record = cache.get(rel_path)
        if not (isinstance(record, tuple) and len(record) == 3):
            record = None  # absent, or a damaged cache that still unmarshalled
        known_tree, old, old_extras = record if record is not None else ("", {}, {})
        files, entries, fresh, extras = self._scan(rel_path, old)
        listing = "\n".join(entries).encode("utf-8", "surrogateescape")
        tree = HostTree(rel_path, xxhash.xxh3_128_hexdigest(listing), files)
        self.last[rel_path] = tree
        self._listings.setdefault(tree.tree_hash, files)
        if record is not None and tree.tree_hash != known_tree:
            # The state being replaced may be what the last build recorded: keep its listing.
            self._save_manifest(known_tree, _listing(rel_path, record))
        if tree.tree_hash != known_tree or fresh != old or extras != old_extras:
            cache[rel_path] = (tree.tree_hash, fresh, extras)
            self._dirty = True
        return tree

    def recheck(self, rel_path: str, previous: HostTree) -> list[str]:
        """Re-hash ``rel_path`` and return the project-relative files that differ from ``previous`` (sorted)."""
        current = self.hash_tree(rel_path)
        if current.tree_hash == previous.tree_hash:
            return []
        return diff_files(previous.files, current.files)

    def _scan(
        self, rel_path: str, old: Mapping[str, _Entry]
    ) -> tuple[dict[str, str], list[str], dict[str, _Entry], dict[str, str]]:
        fresh: dict[str, _Entry] = {}
        extras: dict[str, str] = {}
        files: dict[str, str] = {}
        # "path\0kind\0value": sorting these strings sorts by path, as \0 sorts first.
        rows: list[str] = []
        now_ns = time.time_ns()
        racy_ns = _RACY_NS
        top = os.path.join(self.root, rel_path)
        try:
            # The mount root itself is followed (Docker follows it too); links inside are not.
            top_stat = os.stat(top)
        except FileNotFoundError:
            msg = f"host path '{rel_path}' does not exist under {self.root}"
            raise HostPathError(msg) from None
        except OSError as error:
            msg = f"host path '{rel_path}' cannot be read: {error.strerror}"
            raise HostPathError(msg) from None
        prefix = _prefix(rel_path)

        def visit(abs_path: str, rel: str, st: os.stat_result) -> None:
            mode = st.st_mode
            project_rel = prefix + rel if rel else rel_path
            if stat.S_ISLNK(mode):
                target = os.readlink(abs_path)
                files[project_rel] = extras[rel] = "l:" + target
                rows.append(f"{rel}\0l\0{target}")
            elif stat.S_ISREG(mode):
                entry = old.get(rel)
                if (
                    entry is not None
                    and entry[0] == st.st_size
                    and entry[1] == st.st_mtime_ns
                    and entry[2] == st.st_ino
                    and entry[3] == st.st_ctime_ns
                ):
                    oid = entry[4]
                else:
                    try:
                        oid = hash_file(abs_path)
                    except OSError as error:
                        msg = f"host file '{project_rel}' cannot be read: {error.strerror}"
                        raise HostPathError(msg) from None
                    self.files_read += 1
                if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
                    fresh[rel] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, oid)
                else:
                    extras[rel] = oid
                files[project_rel] = oid
                rows.append(f"{rel}\0x\0{oid}" if mode & 0o111 else f"{rel}\0f\0{oid}")
            else:
                files[project_rel] = extras[rel] = "o:"
                rows.append(f"{rel}\0o\0")

        if stat.S_ISDIR(top_stat.st_mode):
            stack = [("", top)]
            while stack:
                rel_dir, abs_dir = stack.pop()
                try:
                    iterator = os.scandir(abs_dir)
                except OSError as error:
                    msg = f"host directory '{prefix + rel_dir or rel_path}' cannot be read: {error.strerror}"
                    raise HostPathError(msg) from None
                with iterator:
                    for entry in iterator:
                        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                        if entry.is_dir(follow_symlinks=False):
                            # Directories are part of the tree (an empty one too):
                            # the step sees them, so adding one must change the hash.
                            files[prefix + rel] = extras[rel] = "d:"
                            rows.append(f"{rel}\0d\0")
                            stack.append((rel, entry.path))
                            continue
                        st = entry.stat(follow_symlinks=False)
                        # Fast path, inlined because it runs once per file: an unchanged
                        # regular file keeps its cache entry (the same tuple, no allocation).
                        cached = old.get(rel)
                        if (
                            cached is not None
                            and cached[0] == st.st_size
                            and cached[1] == st.st_mtime_ns
                            and cached[2] == st.st_ino
                            and cached[3] == st.st_ctime_ns
                            and stat.S_ISREG(st.st_mode)
                            and now_ns - st.st_mtime_ns > racy_ns
                            and now_ns - st.st_ctime_ns > racy_ns
                        ):
                            oid = cached[4]
                            fresh[rel] = cached
                            files[prefix + rel] = oid
                            rows.append(f"{rel}\0x\0{oid}" if st.st_mode & 0o111 else f"{rel}\0f\0{oid}")
                        else:
                            visit(entry.path, rel, st)
        else:
            visit(top, "", top_stat)

        rows.sort()
        return files, rows, fresh, extras


def _prefix(rel_path: str) -> str:
    return "" if rel_path in ("", ".") else rel_path.rstrip("/") + "/"


def _listing(rel_path: str, record: _Record) -> dict[str, str]:
    """The project-relative file listing a stat-cache record describes."""
    prefix = _prefix(rel_path)
    _, entries, extras = record
    out = {(prefix + rel if rel else rel_path): entry[4] for rel, entry in entries.items()}
    out.update({(prefix + rel if rel else rel_path): value for rel, value in extras.items()})
    return out


def diff_files(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Return the sorted paths added, removed or changed between two file listings."""
    changed = {path for path, oid in after.items() if before.get(path) != oid}
    changed.update(path for path in before if path not in after)
    return sorted(changed)


def _write_atomic(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a cache that cannot be written only costs time next run


def changed_host_files(hasher: HostHasher, document: Mapping[str, Any]) -> list[str]:
    """Re-hash a step's host paths after it ran; return the files that changed since ``document``.

    A non-empty answer means the output must not be recorded under the
    document's fingerprint. A host path that vanished is reported as changed.
    """
    changed: list[str] = []
    for entry in (*(document.get("mounts") or ()), *(document.get("sources") or ())):
        host = entry["host"]
        try:
            current = hasher.hash_tree(host)
        except PipexError:
            changed.append(host)
            continue
        if current.tree_hash == entry["tree"]:
            continue
        before = hasher.manifest(entry["tree"])
        for path in diff_files(before, current.files) if before is not None else [host]:
            if path not in changed:
                changed.append(path)
    hasher.save()
    return changed
