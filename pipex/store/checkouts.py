"""Trees materialised on disk: read-only hard-link checkouts (mounted as inputs) and independent exports.

``checkouts/<tree_id>/`` is built in staging and renamed into place once, so
a checkout that exists is whole; later uses reuse it. An inode has a link
limit (65000 on ext4): past it a file is a read-only copy.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import StoreError
from pipex.store._fs import copy_file, rename_into_place, rmtree, show_path, store_errors, syncfs
from pipex.store.owners import owner_token
from pipex.store.trees import EntryType, Tree

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["checkout", "export"]


def checkout(store: Store, tree_id: str) -> Path:
    """A read-only hard-link materialisation of ``tree_id`` under checkouts/, made once and reused."""
    dest = store.checkout_path(tree_id)
    with store.shared_lock():
        if dest.is_dir():
            return dest
        tree = store.read_tree(tree_id)
        store.ensure_objects(tree)
        with store_errors(f"cannot check out tree {tree_id}"):
            tmp = tempfile.mkdtemp(prefix=f"checkout-{owner_token()}-", dir=store.root / "staging")
            try:
                _materialise(store, tree, os.fsencode(tmp))
                syncfs(tmp)  # a checkout found after a power cut must be whole
                # Another process may have checked out the same tree first: then use theirs.
                if rename_into_place(tmp, dest):
                    os.chmod(dest, 0o555)
            finally:
                rmtree(tmp)
    return dest

def _materialise(store: Store, tree: Tree, root: bytes) -> None:
    dirs: list[bytes] = []
    for entry in tree.entries:
        path = root + b"/" + entry.path
        if entry.type is EntryType.FILE:
            src = store.object_path(entry)
            try:
                os.link(src, path)
            except FileNotFoundError:
                raise store.missing_object(entry, tree.tree_id) from None
            except OSError as error:
                if error.errno != errno.EMLINK:
                    raise
                # An inode has a link limit (65000 on ext4): past it, a read-only copy.
                copy_file(src, path, 0o555 if entry.executable else 0o444)
        elif entry.type is EntryType.DIR:
            os.mkdir(path, 0o755)
            dirs.append(path)
        else:
            assert entry.target is not None
            os.symlink(entry.target, path)
    for path in reversed(dirs):
        os.chmod(path, 0o555)


def export(store: Store, tree_id: str, dest: Path) -> None:
    """Materialise ``tree_id`` at ``dest`` as an independent copy with the recorded modes.

    ``dest`` may exist (a real directory, e.g. a step's output); existing
    names are never overwritten and links in ``dest`` are never followed.
    """
    tree = store.read_tree(tree_id)
    store.ensure_objects(tree)
    with store.shared_lock(), store_errors(f"cannot export tree {tree_id} to {dest}"):
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
                src = store.object_path(entry)
                try:
                    copy_file(src, path, entry.mode)
                except FileNotFoundError as error:
                    if error.filename is not None and os.fsencode(error.filename) == src:
                        raise store.missing_object(entry, tree_id) from None
                    raise
        for path, mode in reversed(dirs):
            os.chmod(path, mode)
