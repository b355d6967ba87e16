"""Trees: a directory as a sorted, canonical JSON manifest named by its own hash.

On disk: ``trees/<id[:2]>/<id[2:]>.json`` (mode 0444), where ``id`` is the
xxh3-128 of the file's bytes. The bytes are canonical JSON (sorted keys, no
whitespace, UTF-8) of::

    {"entries": [ENTRY, ...], "version": 1}

with entries sorted by their path *as bytes*, one per file, directory and
symlink below the root (every directory is listed, so empty ones survive)::

    {"mode": 420, "oid": "<32 hex>", "path": "a/b.txt", "size": 3, "type": "file"}
    {"mode": 493, "path": "a", "type": "dir"}
    {"path": "a/l", "target": "b.txt", "type": "link"}

Why: the same directory always yields the same bytes, hence the same id, on
any machine; a tree is small, greppable and diffable; the id covers names,
modes and link targets, not only contents.

Names are byte-exact. POSIX names are bytes, JSON strings are Unicode, so a
path (or link target) that is valid UTF-8 is stored as the string ``path``
(``target``), and any other byte string as ``path_b64`` (``target_b64``), its
standard base64. Decoding is therefore exact and the choice deterministic.
Modes keep the permission bits (0o777) only: setuid, setgid and sticky are
dropped because outputs are untrusted.
"""

from __future__ import annotations

import builtins

import base64
import binascii
import enum
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipex.errors import StoreCorruptError, UnsafeOutputError
from pipex.store._fs import show_path
from pipex.store.objects import hash_bytes, is_oid

__all__ = [
    "TREE_FORMAT",
    "EntryType",
    "TreeEntry",
    "Tree",
    "Scan",
    "UnsafeOutputError",
    "scan_output",
    "check_tree_links",
    "encode_tree",
    "decode_tree",
    "tree_object_keys",
]

TREE_FORMAT = 1
_PERM = 0o777


class EntryType(enum.Enum):
    """What a tree entry is."""

    FILE = "file"
    DIR = "dir"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One name in a tree: a file (object id, size, mode), a directory (mode) or a symlink (target)."""

    path: bytes
    type: EntryType
    mode: int = 0
    oid: str | None = None
    size: int = 0
    target: bytes | None = None

    @property
    def executable(self) -> bool:
        """True for files with any exec bit; they check out as the object's ``.x`` variant."""
        return self.type is EntryType.FILE and bool(self.mode & 0o111)


@dataclass(frozen=True)
class Tree:
    """A stored directory: its id and its entries sorted by path bytes."""

    tree_id: str
    entries: tuple[TreeEntry, ...]
    _index: dict[bytes, TreeEntry] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self) -> Iterator[TreeEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def files(self) -> int:
        """Number of regular files."""
        return sum(1 for e in self.entries if e.type is EntryType.FILE)

    @property
    def bytes(self) -> int:
        """Total size of the regular files."""
        return sum(e.size for e in self.entries if e.type is EntryType.FILE)

    def get(self, path: builtins.bytes | str) -> TreeEntry | None:
        """The entry at ``path`` (bytes, or str encoded with the filesystem encoding), if any."""
        if not self._index:
            self._index.update((e.path, e) for e in self.entries)
        return self._index.get(os.fsencode(path))


@dataclass
class Scan:
    """Phase one of ingest: what an output directory holds, validated, nothing moved yet."""

    dirs: list[tuple[bytes, int]] = field(default_factory=list)
    links: list[tuple[bytes, bytes]] = field(default_factory=list)
    files: list[tuple[bytes, bytes, os.stat_result]] = field(default_factory=list)  # rel, abs, lstat


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def scan_output(root: bytes) -> Scan:
    """Walk ``root`` without following links; refuse special files and links leaving ``root``."""
    scan = Scan()
    pending = [b""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                relpath = rel + b"/" + entry.name if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISREG(mode):
                    scan.files.append((relpath, entry.path, st))
                elif stat.S_ISDIR(mode):
                    scan.dirs.append((relpath, mode & _PERM))
                    pending.append(relpath)
                elif stat.S_ISLNK(mode):
                    target = os.readlink(entry.path)
                    check_link(root, relpath, target)
                    scan.links.append((relpath, target))
                else:
                    msg = f"output {show_path(relpath)!r} is {_kind(mode)}; only files, directories and symlinks are stored"
                    raise UnsafeOutputError(msg)
    return scan


def check_link(root: bytes, relpath: bytes, target: bytes) -> None:
    """Refuse a symlink whose target is absolute or resolves outside ``root`` (``pipex.store.links``)."""
    from pipex.store.links import Kind  # only ingest checks links on disk

    def kind_of(parts: tuple[bytes, ...]) -> tuple[Kind, bytes | None] | None:
        here = os.path.join(root, *parts)
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return None  # dangling inside the output is harmless
        if stat.S_ISLNK(st.st_mode):
            return Kind.LINK, os.readlink(here)
        return (Kind.DIR if stat.S_ISDIR(st.st_mode) else Kind.FILE), None

    _check_link_with(relpath, target, kind_of)


def check_tree_links(tree: Tree) -> None:
    """Refuse a tree with a link that leaves it: the check ingest makes on disk, made on a tree from elsewhere."""
    from pipex.store.links import Kind

    kinds = {entry.path: entry for entry in tree.entries}

    def kind_of(parts: tuple[bytes, ...]) -> tuple[Kind, bytes | None] | None:
        entry = kinds.get(b"/".join(parts))
        if entry is None:
            return None
        if entry.type is EntryType.LINK:
            return Kind.LINK, entry.target
        return (Kind.DIR if entry.type is EntryType.DIR else Kind.FILE), None

    for entry in tree.entries:
        if entry.type is EntryType.LINK:
            assert entry.target is not None
            _check_link_with(entry.path, entry.target, kind_of)


def _check_link_with(relpath: bytes, target: bytes, kind_of: Any) -> None:
    def refuse(why: str) -> UnsafeOutputError:
        msg = (
            f"output symlink {show_path(relpath)!r} -> {show_path(target)!r} {why}; "
            "links must stay inside the output"
        )
        return UnsafeOutputError(msg)

    if target.startswith(b"/"):
        raise refuse("is absolute")
    if not target:
        raise refuse("is empty")
    from pipex.store.links import Outcome, walk_path

    walk = walk_path(tuple(relpath.split(b"/")[:-1]), target, kind_of)
    if walk.outcome is Outcome.ESCAPES:
        raise refuse("points outside the output")
    if walk.outcome is Outcome.ABSOLUTE:
        raise refuse("goes through an absolute link")
    if walk.outcome is Outcome.LOOPS:
        raise refuse("loops")


_TYPES = {t.value: t for t in EntryType}


def _put_name(doc: dict[str, object], key: str, value: bytes) -> None:
    try:
        doc[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        doc[key + "_b64"] = base64.b64encode(value).decode("ascii")


def _get_name(doc: dict[str, object], key: str) -> bytes:
    if key in doc:
        value = doc[key]
        if not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
        return value.encode("utf-8")
    value = doc.get(key + "_b64")
    if not isinstance(value, str):
        raise ValueError(f"entry has no {key}")
    return base64.b64decode(value, validate=True)


def encode_tree(entries: list[TreeEntry]) -> tuple[str, bytes]:
    """Return (tree id, canonical bytes) for ``entries`` (sorted here by path bytes)."""
    docs = []
    for e in sorted(entries, key=lambda e: e.path):
        doc: dict[str, object] = {"type": e.type.value}
        _put_name(doc, "path", e.path)
        if e.type is EntryType.FILE:
            doc["mode"] = e.mode & _PERM
            doc["oid"] = e.oid
            doc["size"] = e.size
        elif e.type is EntryType.DIR:
            doc["mode"] = e.mode & _PERM
        else:
            assert e.target is not None
            _put_name(doc, "target", e.target)
        docs.append(doc)
    data = json.dumps(
        {"entries": docs, "version": TREE_FORMAT}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    return hash_bytes(data), data


def _damaged(tree_id: str, why: str) -> StoreCorruptError:
    msg = f"tree {tree_id} is damaged ({why}); run 'pipex verify --repair'"
    return StoreCorruptError(msg)


def _load(tree_id: str, data: bytes) -> list[dict[str, Any]]:
    if hash_bytes(data) != tree_id:
        raise _damaged(tree_id, "content does not match its id, truncated?")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise _damaged(tree_id, f"not JSON: {error}") from None
    if not isinstance(doc, dict) or doc.get("version") != TREE_FORMAT or not isinstance(doc.get("entries"), list):
        raise _damaged(tree_id, "unknown format")
    entries: list[dict[str, Any]] = doc["entries"]
    return entries


def _check_path(path: bytes, dirs: set[bytes]) -> None:
    # No empty, "." or ".." component, no NUL: a tree can never write outside its root.
    framed = b"/" + path + b"/"
    if not path or b"//" in framed or b"/./" in framed or b"/../" in framed or b"\0" in path:
        raise ValueError(f"unsafe path {show_path(path)!r}")
    # Every parent must be a directory entry listed before: no name hides under a link.
    parent, slash, _ = path.rpartition(b"/")
    if slash and parent not in dirs:
        raise ValueError(f"{show_path(path)!r} has no parent directory entry")


def decode_tree(tree_id: str, data: bytes) -> Tree:
    """Parse and check tree bytes; raise StoreCorruptError if they do not match ``tree_id`` or are invalid."""
    raw = _load(tree_id, data)
    entries: list[TreeEntry] = []
    dirs: set[bytes] = set()
    try:
        previous = b""
        for doc in raw:
            path = _get_name(doc, "path")
            _check_path(path, dirs)
            if entries and path <= previous:
                raise ValueError("entries not sorted")
            previous = path
            kind = _TYPES[doc["type"]]
            if kind is EntryType.FILE:
                oid, size, mode = doc["oid"], doc["size"], doc["mode"]
                if not is_oid(oid) or type(size) is not int or size < 0 or type(mode) is not int:
                    raise ValueError(f"bad file entry {show_path(path)!r}")
                entries.append(TreeEntry(path, kind, mode & _PERM, oid, size))
            elif kind is EntryType.DIR:
                mode = doc["mode"]
                if type(mode) is not int:
                    raise ValueError(f"bad dir entry {show_path(path)!r}")
                dirs.add(path)
                entries.append(TreeEntry(path, kind, mode & _PERM))
            else:
                target = _get_name(doc, "target")
                if not target or target.startswith(b"/") or b"\0" in target:
                    raise ValueError(f"bad link target for {show_path(path)!r}")
                entries.append(TreeEntry(path, kind, target=target))
    except (KeyError, ValueError, TypeError, binascii.Error, AttributeError) as error:
        raise _damaged(tree_id, str(error)) from None
    return Tree(tree_id, tuple(entries))


def tree_object_keys(tree_id: str, data: bytes) -> list[str]:
    """The object keys (``oid`` or ``oid.x``) a tree names, without building entries (gc's fast path)."""
    raw = _load(tree_id, data)
    keys: list[str] = []
    try:
        for doc in raw:
            if doc["type"] == "file":
                oid = doc["oid"]
                if not is_oid(oid):
                    raise ValueError("bad object id")
                keys.append(oid + ".x" if doc["mode"] & 0o111 else oid)
    except (KeyError, ValueError, TypeError) as error:
        raise _damaged(tree_id, str(error)) from None
    return keys
