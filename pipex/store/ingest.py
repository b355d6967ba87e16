"""Ingest: a finished step's output directory -> objects (moved in, never copied on one filesystem) + one tree.

Objects first, then one ``syncfs``, then the tree's name: a tree that exists
names only durable objects. Nothing is changed if the output is refused
(special files, links leaving it).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import StoreError
from pipex.store._fs import store_errors, syncfs, write_atomic
from pipex.store.objects import hash_bytes
from pipex.store.trees import EntryType, Tree, TreeEntry, check_tree_links, decode_tree, encode_tree, scan_output

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["IngestResult", "ingest"]


@dataclass(frozen=True)
class IngestResult:
    """What ingest stored: the tree id, how many regular files and how many bytes."""

    tree_id: str
    files: int
    bytes: int


def ingest(store: Store, directory: Path) -> IngestResult:
    """Store the files, directories and links under ``directory``; return its tree.

    Files are moved out of ``directory`` (renamed; copied when on another
    filesystem or when rename is refused). Nothing is changed if the output
    is refused (special files, links leaving it). Runs under the shared lock.
    """
    root_b = os.fsencode(directory)
    with store.shared_lock(), store_errors(f"cannot store {directory}"):
        st = os.stat(root_b)
        if not stat.S_ISDIR(st.st_mode):
            msg = f"cannot store {directory}: not a directory"
            raise StoreError(msg)
        scan = scan_output(root_b)
        copy = st.st_dev != store.device
        entries: list[TreeEntry] = [TreeEntry(p, EntryType.DIR, mode) for p, mode in scan.dirs]
        entries += [TreeEntry(p, EntryType.LINK, target=t) for p, t in scan.links]
        total = 0
        for rel, path, lst in scan.files:
            mode = lst.st_mode & 0o777
            oid, size = store.objects.add_file(path, lst, bool(mode & 0o111), copy=copy)
            entries.append(TreeEntry(rel, EntryType.FILE, mode, oid, size))
            total += size
        tree_id, data = encode_tree(entries)
        write_tree(store, tree_id, data)
    return IngestResult(tree_id, len(scan.files), total)

def write_tree(store: Store, tree_id: str, data: bytes) -> None:
    """Write tree bytes under their id unless that tree is there (after its objects are durable)."""
    path = store.tree_path(tree_id)
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        path.parent.mkdir(exist_ok=True)
    # One syncfs makes the objects just moved in *and* the tree's temp file
    # durable (one journal commit); only then may the tree's name appear.
    write_atomic(path, data, store.tmpdir(), durable=lambda: syncfs(store.root / "objects"))


def add_tree(store: Store, data: bytes) -> Tree:
    """Store tree bytes from elsewhere (a remote cache): checked like an ingested output, its objects may follow later.

    The hash must match, paths must be safe and every link must stay inside
    (``check_tree_links``): a tree from elsewhere is untrusted input.
    """
    tree_id = hash_bytes(data)
    tree = decode_tree(tree_id, data)
    check_tree_links(tree)
    with store.shared_lock(), store_errors(f"cannot store tree {tree_id}"):
        write_tree(store, tree_id, data)
    return tree
