"""Checkout (read-only hard links, made once) and export (an independent copy)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from store_helpers import snapshot

from pipex.errors import StoreCorruptError, StoreError
from pipex.store import Store


def test_checkout_hard_links_read_only_objects(store: Store, make_output) -> None:
    tree_id = store.ingest(make_output({"a": b"alpha", "bin": {"run": ("exec", b"go")}, "l": ("link", "a")})).tree_id
    root = store.checkout(tree_id)
    assert root == store.root / "checkouts" / tree_id
    tree = store.read_tree(tree_id)
    assert os.stat(root / "a").st_ino == os.stat(store.objects.path(tree.get("a").oid)).st_ino
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(root / "bin" / "run").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(root / "bin").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o555
    assert os.readlink(root / "l") == "a"
    assert (root / "l").read_bytes() == b"alpha"


def test_checkout_is_made_once_and_reused(store: Store, make_output) -> None:
    tree_id = store.ingest(make_output({"a": b"1"})).tree_id
    first = store.checkout(tree_id)
    inode = os.stat(first).st_ino
    assert store.checkout(tree_id) == first
    assert os.stat(first).st_ino == inode
    assert os.listdir(store.root / "staging") == [] or all(n.startswith("tmp-") for n in os.listdir(store.root / "staging"))


def test_concurrent_checkouts_of_one_tree_agree(store: Store, make_output) -> None:
    tree_id = store.ingest(make_output({f"f{i}": str(i).encode() for i in range(200)})).tree_id
    results: list[Path] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(Store.open(store.root).checkout(tree_id))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert sorted(os.listdir(results[0])) == sorted(f"f{i}" for i in range(200))


def test_checkout_with_a_missing_object_names_it(store: Store, make_output) -> None:
    tree_id = store.ingest(make_output({"a": b"gone"})).tree_id
    oid = store.read_tree(tree_id).get("a").oid
    os.unlink(store.objects.path(oid))
    with pytest.raises(StoreCorruptError, match=f"object {oid} .*'a'"):
        store.checkout(tree_id)
    assert not (store.root / "checkouts" / tree_id).exists()


def test_export_is_an_independent_copy_with_recorded_modes(store: Store, make_output, tmp_path: Path) -> None:
    out = make_output({"a": b"alpha", "x": ("exec", b"run"), "d": {"e": {}}, "l": ("link", "a")})
    os.chmod(out / "d", 0o750)
    before = snapshot(out)
    tree_id = store.ingest(out).tree_id
    dest = tmp_path / "exported"
    store.export(tree_id, dest)
    assert snapshot(dest) == before
    (dest / "a").chmod(0o644)
    (dest / "a").write_bytes(b"changed")
    assert store.checkout(tree_id).joinpath("a").read_bytes() == b"alpha"


def test_export_into_an_existing_output_merges_but_never_overwrites(store: Store, make_output, tmp_path: Path) -> None:
    tree_id = store.ingest(make_output({"d": {"a": b"1"}})).tree_id
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "d" / "mine").write_bytes(b"m")
    store.export(tree_id, dest)
    assert sorted(os.listdir(dest / "d")) == ["a", "mine"]
    with pytest.raises(StoreError, match="exists"):
        store.export(tree_id, dest)


def test_export_never_follows_a_link_in_the_destination(store: Store, make_output, tmp_path: Path) -> None:
    tree_id = store.ingest(make_output({"d": {"a": b"1"}})).tree_id
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "d")
    with pytest.raises(StoreError, match="not a directory"):
        store.export(tree_id, dest)
    assert list(outside.iterdir()) == []


def test_checkout_copies_when_an_object_has_too_many_links(
    store: Store, make_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    tree_id = store.ingest(make_output({"a": b"popular", "x": ("exec", b"tool")})).tree_id

    def full(src, dst, *args, **kwargs):
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(os, "link", full)
    root = store.checkout(tree_id)
    assert (root / "a").read_bytes() == b"popular"
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(root / "x").st_mode) == 0o555
