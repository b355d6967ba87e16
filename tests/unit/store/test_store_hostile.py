"""Hostile outputs and damaged staging: deep trees, capabilities, link cycles (issue 10, items 6, 9, 19)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pipex.store import EntryType, Store
from pipex.store._fs import rmtree, walk_files
from pipex.store.gc import gc
from pipex.store.verify import verify


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path):  # type: ignore[no-untyped-def]
    """pytest removes old temp dirs with shutil.rmtree, which recurses: leave nothing deep behind."""
    yield
    for child in tmp_path.iterdir():
        rmtree(child)


def _deep(root: Path, levels: int, name: bytes = b"d") -> None:
    """``levels`` nested directories under ``root`` (made through dir fds: no path length limit), a file in each."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(os.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=child))
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def test_rmtree_removes_a_tree_deeper_than_the_recursion_limit_and_path_max(tmp_path: Path) -> None:
    target = tmp_path / "deep"
    _deep(target, 2500, b"directory")  # 2,500 levels, 25,000 bytes of path: beyond PATH_MAX
    rmtree(target)
    assert not target.exists()


def test_rmtree_opens_up_read_only_and_mode_zero_directories(tmp_path: Path) -> None:
    target = tmp_path / "locked"
    (target / "a" / "b").mkdir(parents=True)
    (target / "a" / "b" / "f").write_text("x")
    os.chmod(target / "a" / "b", 0o000)
    os.chmod(target / "a", 0o555)
    rmtree(target)
    assert not target.exists()


def test_walk_files_reaches_every_file_of_a_deep_tree(tmp_path: Path) -> None:
    _deep(tmp_path / "deep", 1500)
    assert sum(1 for _ in walk_files(tmp_path / "deep")) == 1500


def test_a_deep_output_is_stored_and_the_store_still_opens(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _deep(out, 1000)
    result = store.ingest(out)
    assert result.files == 1000
    checkout = store.checkout(result.tree_id)
    assert sum(1 for _ in walk_files(checkout)) == 1000
    assert verify(store).ok
    gc(store)  # nothing references the tree: gc removes it and its deep checkout
    assert not checkout.exists()


def test_deep_staging_garbage_of_a_dead_process_does_not_stop_the_store_opening(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    garbage = store.root / "staging" / f"run-x-{pid}.1-abcd"
    _deep(garbage, 3000, b"level")
    reopened = Store.open(store.root)
    assert not garbage.exists()
    assert reopened.found_stale_staging


def test_a_failing_staging_clean_up_never_stops_the_store_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path / "store")
    garbage = store.root / "staging" / "run-x-999999999.1-abcd"
    garbage.mkdir()

    def broken(path: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("pipex.store.store.rmtree", broken)
    assert Store.open(store.root).root == store.root
    assert garbage.exists()  # left for a later try


def _cap_setuid() -> bytes:
    # VFS_CAP_REVISION_2 with the effective bit; permitted = CAP_SETUID (7).
    return struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="setting security.capability needs root")
def test_file_capabilities_and_xattrs_do_not_survive_ingest(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tool = out / "tool"
    tool.write_bytes(b"#!/bin/sh\nid\n")
    os.chmod(tool, 0o755)
    try:
        os.setxattr(tool, "security.capability", _cap_setuid())
        os.setxattr(tool, "user.note", b"hello")
    except OSError as error:
        pytest.skip(f"this filesystem takes no xattrs: {error}")
    result = store.ingest(out)
    entry = store.read_tree(result.tree_id).get("tool")
    assert entry is not None and entry.type is EntryType.FILE
    stored = store.objects.path(entry.oid or "", executable=True)
    assert os.listxattr(stored) == []
    assert os.listxattr(store.checkout(result.tree_id) / "tool") == []


def test_a_symlink_cycle_inside_the_output_is_stored_as_links(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    os.symlink("b", out / "a")
    os.symlink("a", out / "b")
    os.symlink("self", out / "self")
    os.symlink("../d/loop", out / "d" / "loop")
    tree = store.read_tree(store.ingest(out).tree_id)
    links = {e.path: e.target for e in tree.entries if e.type is EntryType.LINK}
    assert links == {b"a": b"b", b"b": b"a", b"self": b"self", b"d/loop": b"../d/loop"}


def test_a_cycle_that_leaves_the_output_on_the_way_is_still_refused(store: Store, tmp_path: Path) -> None:
    from pipex.store import UnsafeOutputError

    out = tmp_path / "out"
    out.mkdir()
    os.symlink("../out/a", out / "a")  # resolves through the parent: outside
    with pytest.raises(UnsafeOutputError, match="points outside the output"):
        store.ingest(out)
