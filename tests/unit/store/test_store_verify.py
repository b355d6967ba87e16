"""verify: find corrupt or missing objects, damaged trees and runs, dangling refs; repair so they rebuild."""

from __future__ import annotations

import os
from pathlib import Path

from pipex.store import ProblemKind, Store
from pipex.store.verify import verify
from pipex.store.runs import RunMeta


def _build(store: Store, make_output, run_id: str, spec: dict, step: str = "s") -> str:
    tree = store.ingest(make_output(spec)).tree_id
    store.record_run(run_id, RunMeta(output_tree=tree), None)
    store.set_ref("ws", step, run_id)
    return tree


def _clobber(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def test_clean_store_verifies(store: Store, make_output) -> None:
    _build(store, make_output, "r", {"a": b"1", "x": ("exec", b"2")})
    report = verify(store)
    assert report.ok and report.objects == 2 and report.trees == 1 and report.runs == 1 and report.refs == 1


def test_corrupt_object_is_found_and_repair_drops_runs_so_they_rebuild(store: Store, make_output) -> None:
    tree = _build(store, make_output, "bad", {"a": b"good content"})
    good = _build(store, make_output, "good", {"b": b"other"}, step="t")
    oid = store.read_tree(tree).get("a").oid
    checkout = store.checkout(tree)
    _clobber(store.objects.path(oid), b"evil content")
    report = verify(store)
    assert [(p.kind, p.name) for p in report.problems] == [(ProblemKind.CORRUPT_OBJECT, oid)]
    repaired = verify(store, repair=True)
    assert repaired.repaired and repaired.quarantined == 1 and repaired.runs_dropped == 1 and repaired.refs_dropped == 1
    assert not checkout.exists()
    assert list((store.root / "quarantine").glob(f"*/objects/{oid}"))
    assert store.get_ref("ws", "s") is None and not store.has_run("bad")
    assert store.get_ref("ws", "t") == "good" and store.has_tree(good)
    assert verify(store).ok
    # The rebuild stores the object again.
    assert _build(store, make_output, "bad", {"a": b"good content"}) == tree
    assert store.checkout(tree).joinpath("a").read_bytes() == b"good content"
    assert verify(store).ok


def test_truncated_tree_and_runs_naming_it(store: Store, make_output) -> None:
    tree = _build(store, make_output, "r", {"a": b"1"})
    path = store.tree_path(tree)
    _clobber(path, path.read_bytes()[:20])
    kinds = {p.kind for p in verify(store).problems}
    assert kinds == {ProblemKind.CORRUPT_TREE}
    repaired = verify(store, repair=True)
    assert repaired.runs_dropped == 1 and store.get_ref("ws", "s") is None
    assert verify(store).ok


def test_missing_object_missing_tree_missing_run_and_dangling_ref(store: Store, make_output) -> None:
    t1 = _build(store, make_output, "r1", {"a": b"1"}, step="s1")
    t2 = _build(store, make_output, "r2", {"b": b"2"}, step="s2")
    _build(store, make_output, "r3", {"c": b"3"}, step="s3")
    os.unlink(store.objects.path(store.read_tree(t1).get("a").oid))
    os.unlink(store.tree_path(t2))
    os.rename(store.root / "runs" / "r3", store.root / "staging" / "gone")
    (store.root / "runs" / "empty").mkdir()  # a run dir without meta.json
    report = verify(store)
    assert {p.kind for p in report.problems} == {
        ProblemKind.MISSING_OBJECT,
        ProblemKind.MISSING_TREE,
        ProblemKind.DANGLING_REF,
        ProblemKind.DAMAGED_RUN,
    }
    assert not report.ok
    repaired = verify(store, repair=True)
    assert repaired.runs_dropped == 3 and repaired.refs_dropped == 3
    assert store.workspace_refs("ws") == {}
    assert verify(store).ok
