"""Every command works on the project's store (``.pipex.yml store:``), and the gc verb is always callable (issue 10, items 2, 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipex.store import Store


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEX_STORE", "PIPEX_DEBUG")}
    # The default store would be under here: the test checks it stays untouched.
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home"), "NO_COLOR": "1"}


def _pipex(tmp_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipex", *args], cwd=cwd, env=_env(tmp_path), capture_output=True, text=True, timeout=60
    )


def _project_with_store(tmp_path: Path) -> tuple[Path, Store]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.yaml").write_text("id: p\nsteps:\n  - {id: a, image: busybox, cmd: 'true'}\n")
    (project / ".pipex.yml").write_text("store: .store\n")
    store = Store.open(project / ".store")
    out = tmp_path / "out"
    out.mkdir()
    (out / "garbage.txt").write_text("nobody references me")
    store.ingest(out)
    return project, store


def test_gc_prune_and_verify_use_the_store_named_in_pipex_yml(tmp_path: Path) -> None:
    project, store = _project_with_store(tmp_path)
    (oid,) = [p.name for p in (store.root / "objects").rglob("*") if p.is_file()]
    victim = next((store.root / "objects").rglob("*" + oid))
    os.chmod(victim, 0o644)
    victim.write_text("damaged")

    verified = _pipex(tmp_path, project, "verify", "--json")
    report = json.loads(verified.stdout)
    assert verified.returncode == 1 and not report["ok"] and report["objects"] == 1, verified.stdout

    collected = _pipex(tmp_path, project, "gc", "--json")
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout)["objects"] == 1
    assert not any(p.is_file() for p in (store.root / "objects").rglob("*"))
    default_store = tmp_path / "xdg" / "pipex"
    assert not (default_store / "objects").exists(), "a command opened the default store instead of the project's"


def test_api_gc_is_callable_whatever_was_imported_before(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = (
        "import sys, pipex.store.gc, pipex.store.verify\n"
        "from pipex import api\n"
        f"report = api.gc({str(store)!r}, dry_run=True)\n"
        "print(type(report).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "GcReport"
