"""The gc, prune and verify commands: reports, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipex.store import Store
from pipex.store.runs import RunMeta


def pipex(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEX_STORE", "PIPEX_DEBUG")}
    return subprocess.run([sys.executable, "-m", "pipex", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def _populate(store: Store, make_output) -> str:
    for run_id, content in (("keep", b"kept"), ("drop", b"dropped")):
        tree = store.ingest(make_output({"f": content})).tree_id
        store.record_run(run_id, RunMeta(output_tree=tree), None)
    store.set_ref("ws", "s", "keep")
    return tree


def test_gc_dry_run_then_gc_json(store: Store, make_output) -> None:
    _populate(store, make_output)
    dry = pipex("gc", "--dry-run", "--store", str(store.root))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would remove 1 runs, 1 trees, 1 objects")
    real = pipex("gc", "--store", str(store.root), "--json")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["objects"] == 1


def test_verify_exits_1_on_damage_and_repair_fixes_it(store: Store, make_output) -> None:
    tree = _populate(store, make_output)
    assert pipex("verify", "--store", str(store.root)).returncode == 0
    obj = store.objects.path(store.read_tree(tree).get("f").oid)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"rot")
    found = pipex("verify", "--store", str(store.root), "--json")
    assert found.returncode == 1
    assert json.loads(found.stdout)["problems"][0]["kind"] == "corrupt-object"
    repaired = pipex("verify", "--repair", "--store", str(store.root))
    assert repaired.returncode == 1 and "repaired: quarantined 1" in repaired.stdout
    assert pipex("verify", "--store", str(store.root)).returncode == 0


def test_prune_defaults_to_the_workspace_of_the_current_project(store: Store, make_output, tmp_path: Path) -> None:
    _populate(store, make_output)
    project = tmp_path / "project"
    project.mkdir()
    store.create_workspace("ws", project)
    result = pipex("prune", "--store", str(store.root), cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ws: dropped 0 old refs; removed 1 runs")
    elsewhere = pipex("prune", "--store", str(store.root), cwd=tmp_path)
    # The one rule for "the workspace of this directory" (shared with show, logs, attach...) names what to do.
    assert elsewhere.returncode == 2 and "name a workspace: no workspace belongs to this directory" in elsewhere.stderr


def test_damage_that_stops_gc_is_one_line_without_traceback(store: Store, make_output) -> None:
    _populate(store, make_output)
    meta = store.root / "runs" / "keep" / "meta.json"
    os.chmod(meta, 0o644)
    meta.write_text("{")
    result = pipex("gc", "--store", str(store.root))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("pipex: gc stopped before deleting anything")
    assert "Traceback" not in result.stderr


def test_store_env_variable_is_used(store: Store, make_output) -> None:
    _populate(store, make_output)
    env = dict(os.environ, PIPEX_STORE=str(store.root))
    result = subprocess.run([sys.executable, "-m", "pipex", "gc", "--dry-run"], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "would remove 1 runs" in result.stdout
