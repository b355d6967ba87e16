"""Ingest: objects by content, byte-exact trees, untrusted output refused, fallbacks to copying."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path

import pytest
import xxhash
from store_helpers import snapshot

from pipex.errors import StoreCorruptError, StoreError
from pipex.store import EntryType, Store, UnsafeOutputError, hash_bytes, hash_file
from pipex.store.trees import decode_tree, encode_tree


def test_hash_bytes_and_hash_file_are_xxh3_128(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB chunks
    (tmp_path / "f").write_bytes(data)
    expected = xxhash.xxh3_128(data).hexdigest()
    assert hash_bytes(data) == expected
    assert hash_file(tmp_path / "f") == expected
    assert hash_bytes(b"") == xxhash.xxh3_128(b"").hexdigest()


def test_tree_id_is_hash_of_canonical_json_golden(store: Store, make_output) -> None:
    out = make_output({"a.txt": b"hi", "sub": {"x": ("exec", b"run"), "l": ("link", "../a.txt")}, "e": {}})
    for name, mode in (("a.txt", 0o644), ("sub/x", 0o755), ("sub", 0o755), ("e", 0o700)):
        os.chmod(out / name, mode)  # independent of the umask
    result = store.ingest(out)
    data = store.tree_path(result.tree_id).read_bytes()
    assert xxhash.xxh3_128(data).hexdigest() == result.tree_id
    doc = json.loads(data)
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert [e["path"] for e in doc["entries"]] == ["a.txt", "e", "sub", "sub/l", "sub/x"]
    # Golden: the same directory must give the same id on every machine and version.
    assert result.tree_id == "0935d0e1b0185858b9fe4ff5fbe14a86"
    assert doc["entries"][0] == {"mode": 0o644, "oid": hash_bytes(b"hi"), "path": "a.txt", "size": 2, "type": "file"}
    assert doc["entries"][3] == {"path": "sub/l", "target": "../a.txt", "type": "link"}
    assert (result.files, result.bytes) == (2, 5)


def test_ingest_moves_files_by_rename_without_copying(store: Store, make_output) -> None:
    out = make_output({"big": b"x" * 100_000})
    inode = os.stat(out / "big").st_ino
    result = store.ingest(out)
    oid = store.read_tree(result.tree_id).get("big").oid
    obj = store.objects.path(oid)
    assert os.stat(obj).st_ino == inode
    assert stat.S_IMODE(os.stat(obj).st_mode) == 0o444
    assert not (out / "big").exists()


def test_identical_files_are_stored_once_across_outputs(store: Store, make_output) -> None:
    a = store.ingest(make_output({"one": b"same", "two": b"same"}))
    b = store.ingest(make_output({"three": {"four": b"same"}}))
    objects = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1
    assert a.tree_id != b.tree_id


def test_executable_files_keep_their_exec_bit_as_a_separate_object(store: Store, make_output) -> None:
    tree = store.read_tree(store.ingest(make_output({"run.sh": ("exec", b"#!/bin/sh\n"), "data": b"#!/bin/sh\n"})).tree_id)
    run, data = tree.get("run.sh"), tree.get("data")
    assert run.oid == data.oid and run.executable and not data.executable
    assert stat.S_IMODE(os.stat(store.objects.path(run.oid, True)).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(store.objects.path(run.oid, False)).st_mode) == 0o444


def test_modes_are_kept_and_setuid_setgid_sticky_dropped(store: Store, make_output) -> None:
    out = make_output({"suid": b"a", "plain": b"b", "dir": {}})
    os.chmod(out / "suid", 0o4755)
    os.chmod(out / "plain", 0o2640)
    os.chmod(out / "dir", 0o1777)
    tree = store.read_tree(store.ingest(out).tree_id)
    assert tree.get("suid").mode == 0o755
    assert tree.get("plain").mode == 0o640
    assert tree.get("dir").mode == 0o777


def test_odd_names_round_trip_byte_exactly(store: Store, make_output, tmp_path: Path) -> None:
    names = [b"with space", b"new\nline", b"\xff\xfe not utf-8", "caf\u00e9".encode(), b"tab\tand\\back", b"-dash"]
    out = make_output({n: n for n in names} | {b"d\x80ir": {b"\x01": b"x"}, b"ln\x90": ("link", b"\xff\xfe not utf-8")})
    before = snapshot(out)
    tree_id = store.ingest(out).tree_id
    doc = json.loads(store.tree_path(tree_id).read_bytes())
    assert any("path_b64" in e for e in doc["entries"])
    assert any("target_b64" in e for e in doc["entries"])
    store.export(tree_id, tmp_path / "back")
    assert snapshot(tmp_path / "back") == before


def test_empty_dirs_and_empty_output_are_kept(store: Store, make_output, tmp_path: Path) -> None:
    tree_id = store.ingest(make_output({"a": {"b": {}}, "c": {}})).tree_id
    tree = store.read_tree(tree_id)
    assert [(e.path, e.type) for e in tree] == [(b"a", EntryType.DIR), (b"a/b", EntryType.DIR), (b"c", EntryType.DIR)]
    assert (store.checkout(tree_id) / "a" / "b").is_dir()
    empty = store.ingest(make_output({}))
    assert (empty.files, empty.bytes, len(store.read_tree(empty.tree_id))) == (0, 0, 0)


@pytest.mark.parametrize(
    "target",
    ["/etc/passwd", "..", "../x", "a/../../x", "./../x", "sub/../../../etc"],
)
def test_links_leaving_the_output_are_refused_naming_the_file(store: Store, make_output, target: str) -> None:
    out = make_output({"ok": b"kept", "sub": {}, "evil": ("link", target)})
    with pytest.raises(UnsafeOutputError, match=r"output symlink 'evil' -> .* inside the output"):
        store.ingest(out)
    assert (out / "ok").read_bytes() == b"kept"  # refused before anything moved
    assert not list((store.root / "objects").glob("*/*"))


def test_link_escaping_through_another_link_is_refused(store: Store, make_output) -> None:
    # d/.. is the root lexically, but d -> . makes d/.. the root's parent for the kernel.
    out = make_output({"d": ("link", "."), "l": ("link", "d/../escape")})
    with pytest.raises(UnsafeOutputError, match="'l'"):
        store.ingest(out)


def test_links_inside_the_output_are_stored_as_links_not_followed(store: Store, make_output) -> None:
    out = make_output({"sub": {"t": b"target", "up": ("link", "../top")}, "top": b"x", "dangling": ("link", "nowhere"), "dir": ("link", "sub")})
    tree = store.read_tree(store.ingest(out).tree_id)
    assert tree.get("sub/up").target == b"../top"
    assert tree.get("dir").type is EntryType.LINK
    assert tree.get("dangling").target == b"nowhere"
    assert tree.files == 2


def test_fifo_and_socket_are_refused(store: Store, make_output, tmp_path: Path) -> None:
    out = make_output({"f": b"x"})
    os.mkfifo(out / "pipe")
    with pytest.raises(UnsafeOutputError, match="'pipe' is a fifo"):
        store.ingest(out)
    os.unlink(out / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        os.chdir(out)  # socket paths are length-limited: bind relative
        sock.bind("sock")
        with pytest.raises(UnsafeOutputError, match="'sock' is a socket"):
            store.ingest(out)
    finally:
        sock.close()
        os.chdir(tmp_path)


def test_cross_filesystem_output_is_copied_and_hashed_in_one_pass(store: Store, make_output) -> None:
    out = make_output({"a": b"alpha", "x": ("exec", b"beta")})
    store.device = -1  # as if the output lived on another filesystem
    tree = store.read_tree(store.ingest(out).tree_id)
    assert store.objects.path(tree.get("a").oid).read_bytes() == b"alpha"
    assert store.objects.path(tree.get("x").oid, True).read_bytes() == b"beta"
    assert not (out / "a").exists()


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES, errno.EXDEV])
def test_rename_refused_falls_back_to_copy(store: Store, make_output, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    out = make_output({"owned-by-root": b"content"})
    real_rename = os.rename

    def refuse(src, dst, *args, **kwargs):
        if os.fsencode(src).startswith(os.fsencode(out)):
            raise OSError(code, os.strerror(code), src)
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", refuse)
    tree = store.read_tree(store.ingest(out).tree_id)
    assert store.objects.path(tree.get("owned-by-root").oid).read_bytes() == b"content"


def test_disk_full_during_ingest_is_one_line_error_and_store_stays_valid(
    store: Store, make_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipex.store.verify import verify
    from pipex.store import _fs as store_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "write_temp", full)
    with pytest.raises(StoreError, match="disk is full") as info:
        store.ingest(make_output({"a": b"1", "b": b"2"}))
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert verify(store).ok
    assert store.runs() == []


def test_read_only_store_is_a_clear_error(store: Store, make_output, monkeypatch: pytest.MonkeyPatch) -> None:
    real_rename = os.rename

    def readonly(src, dst, *args, **kwargs):
        if os.fsencode(dst).startswith(os.fsencode(store.root)):
            raise OSError(errno.EROFS, "Read-only file system", dst)
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", readonly)
    with pytest.raises(StoreError, match="read-only filesystem"):
        store.ingest(make_output({"a": b"1"}))


def test_ingest_of_a_missing_directory_is_a_store_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot store"):
        store.ingest(tmp_path / "nope")


def test_truncated_tree_is_reported_as_corrupt(store: Store, make_output) -> None:
    tree_id = store.ingest(make_output({"a": b"1"})).tree_id
    path = store.tree_path(tree_id)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(StoreCorruptError, match=f"tree {tree_id} is damaged"):
        store.read_tree(tree_id)
    with pytest.raises(StoreCorruptError, match="missing"):
        store.read_tree("0" * 32)


@pytest.mark.parametrize(
    "entries",
    [
        [{"path": "../x", "type": "dir", "mode": 493}],
        [{"path": "/abs", "type": "dir", "mode": 493}],
        [{"path": "a/b", "type": "dir", "mode": 493}],  # no parent entry
        [{"path": "l", "type": "link", "target": "x"}, {"path": "l/f", "type": "dir", "mode": 493}],
        [{"path": "f", "type": "file", "mode": 420, "oid": "nothex", "size": 1}],
    ],
)
def test_decode_refuses_trees_that_could_write_outside(entries: list[dict]) -> None:
    data = json.dumps({"entries": entries, "version": 1}, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(StoreCorruptError):
        decode_tree(hash_bytes(data), data)


def test_encode_sorts_by_path_bytes() -> None:
    from pipex.store import TreeEntry

    entries = [TreeEntry(b"a/b", EntryType.DIR, 0o755), TreeEntry(b"a-c", EntryType.DIR, 0o755), TreeEntry(b"a", EntryType.DIR, 0o755)]
    tree_id, data = encode_tree(entries)
    assert [e.path for e in decode_tree(tree_id, data)] == [b"a", b"a-c", b"a/b"]


def test_disk_full_while_copying_an_object_leaves_no_partial_object(
    store: Store, make_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipex.store.verify import verify

    out = make_output({"big": b"x" * 300_000})
    store.device = -1  # copy path
    real_write = os.write

    def full(fd, data):
        if len(data) > 100_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StoreError, match="disk is full"):
        store.ingest(out)
    monkeypatch.undo()
    assert not list((store.root / "objects").glob("*/*"))
    assert verify(store).ok
    assert (out / "big").read_bytes() == b"x" * 300_000  # nothing consumed
