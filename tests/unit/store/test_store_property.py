"""Property: ingest then checkout/export reproduces any tree byte-exactly (content, modes, links, names)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import snapshot

from pipex.store import Store
from pipex.store._fs import rmtree

names = st.binary(min_size=1, max_size=8).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))
file_modes = st.sampled_from([0o644, 0o755, 0o600, 0o700, 0o444, 0o555, 0o4755, 0o2711, 0o1644])
dir_modes = st.sampled_from([0o755, 0o750, 0o700, 0o1777])
files = st.tuples(st.just("file"), st.binary(max_size=300), file_modes)
trees = st.recursive(
    st.dictionaries(names, files, max_size=4),
    lambda children: st.dictionaries(names, st.one_of(files, st.tuples(st.just("dir"), children, dir_modes)), max_size=4),
    max_leaves=20,
)


def _write(root: bytes, spec: dict, paths: list[bytes], rel: bytes = b"") -> None:
    for name, value in spec.items():
        path = os.path.join(root, name)
        relpath = rel + b"/" + name if rel else name
        paths.append(relpath)
        if value[0] == "file":
            with open(path, "wb") as handle:
                handle.write(value[1])
            os.chmod(path, value[2])
        else:
            os.mkdir(path)
            _write(path, value[1], paths, relpath)
            os.chmod(path, value[2])


def _expected(root: Path) -> dict[bytes, tuple]:
    # setuid, setgid and sticky are dropped by design; everything else must survive.
    out = {}
    for path, item in snapshot(root).items():
        out[path] = (*item[:-1], item[-1] & 0o777) if item[0] != "link" else item
    return out


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=trees, data=st.data())
def test_ingest_checkout_export_round_trip(spec: dict, data: st.DataObject) -> None:
    work = Path(tempfile.mkdtemp(prefix="pipex-prop-"))
    try:
        store = Store.open(work / "store")
        out = os.fsencode(work / "out")
        os.mkdir(out)
        paths: list[bytes] = []
        _write(out, {k: v for k, v in spec.items()}, paths)
        # Relative links to anything inside (or dangling inside), placed anywhere.
        for i in range(data.draw(st.integers(0, 3), label="links")):
            dirs = [b""] + [p for p in paths if os.path.isdir(os.path.join(out, p)) and not os.path.islink(os.path.join(out, p))]
            where = data.draw(st.sampled_from(dirs), label="link dir")
            target = data.draw(st.sampled_from(paths + [b"missing"]), label="link target") if paths else b"missing"
            rel = os.path.relpath(os.path.join(out, target), os.path.join(out, where) if where else out)
            link = os.path.join(out, where, b"\xfflink%d" % i) if where else os.path.join(out, b"\xfflink%d" % i)
            if not os.path.lexists(link):
                os.symlink(rel, link)
        expected = _expected(Path(os.fsdecode(out)))

        tree_id = store.ingest(Path(os.fsdecode(out))).tree_id
        tree = store.read_tree(tree_id)
        assert {e.path for e in tree} == set(expected)

        checkout = store.checkout(tree_id)
        seen = snapshot(checkout)
        assert set(seen) == set(expected)
        for path, want in expected.items():
            got = seen[path]
            assert got[0] == want[0]
            if want[0] == "file":
                assert got[1] == want[1]
                assert stat.S_IMODE(got[2]) == (0o555 if want[2] & 0o111 else 0o444)
            elif want[0] == "link":
                assert got[1] == want[1]

        export = work / "export"
        store.export(tree_id, export)
        assert snapshot(export) == expected
        # Ingesting the export again gives the same tree: ids are stable.
        assert store.ingest(export).tree_id == tree_id
    finally:
        rmtree(work)


paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: b"/".join(parts))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(paths, st.sampled_from(["file", "dir", "link"]), st.integers(0, 0o777), st.binary(max_size=12)), max_size=20, unique_by=lambda t: t[0]))
def test_tree_encoding_round_trips_any_names(rows: list) -> None:
    from pipex.store import EntryType, TreeEntry, hash_bytes
    from pipex.store.trees import decode_tree, encode_tree

    # Give every entry its parent directories, as ingest does.
    entries: dict[bytes, TreeEntry] = {}
    for path, kind, mode, extra in rows:
        parts = path.split(b"/")
        for i in range(1, len(parts)):
            parent = b"/".join(parts[:i])
            entries.setdefault(parent, TreeEntry(parent, EntryType.DIR, 0o755))
        if path in entries:
            continue
        if kind == "file":
            entries[path] = TreeEntry(path, EntryType.FILE, mode, hash_bytes(extra), len(extra))
        elif kind == "dir":
            entries[path] = TreeEntry(path, EntryType.DIR, mode)
        else:
            entries[path] = TreeEntry(path, EntryType.LINK, target=extra.replace(b"\0", b"_").lstrip(b"/") or b"x")
    # A name below a file or link is not a tree; keep the rows that form one.
    valid = {p: e for p, e in entries.items() if all(entries[b"/".join(p.split(b"/")[:i])].type is EntryType.DIR for i in range(1, len(p.split(b"/"))))}
    tree_id, data = encode_tree(list(valid.values()))
    tree = decode_tree(tree_id, data)
    assert list(tree.entries) == sorted(valid.values(), key=lambda e: e.path)
    assert encode_tree(list(tree.entries)) == (tree_id, data)
