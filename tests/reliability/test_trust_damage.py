"""Damage that broke builds, found by verify, mended by --repair, and the next build works (issue 10, item 17)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import BUSYBOX, run_pipex, write_project

pytestmark = pytest.mark.docker

PIPELINE = f"""\
id: dmg
steps:
  - {{id: a, image: {BUSYBOX}, cmd: echo a > /output/a}}
  - {{id: b, image: {BUSYBOX}, inputs: [{{step: a}}], cmd: cp /input/a/a /output/b}}
"""


def _ref_is_a_directory(store: Path) -> None:
    ref = store / "workspaces" / "dmg" / "steps" / "b"
    ref.unlink()
    (ref / "junk").mkdir(parents=True)


def _workspace_record_damaged(store: Path) -> None:
    record = store / "workspaces" / "dmg" / "workspace.json"
    os.chmod(record, 0o644)
    record.write_text("{not json")


def _checkout_damaged(store: Path) -> None:
    (checkout,) = [p for p in (store / "checkouts").iterdir() if p.is_dir()]
    os.chmod(checkout, 0o755)
    for child in checkout.iterdir():
        child.unlink()


def _fifo_among_objects(store: Path) -> None:
    os.mkfifo(store / "objects" / "ab" / ("cd" * 15) if (store / "objects" / "ab").is_dir() else _fanout(store))


def _fanout(store: Path) -> Path:
    (store / "objects" / "ab").mkdir()
    return store / "objects" / "ab" / ("cd" * 15)


def _fifo_as_meta(store: Path) -> None:
    run = os.readlink(store / "workspaces" / "dmg" / "steps" / "a").rsplit("/", 1)[-1]
    meta = store / "runs" / run / "meta.json"
    os.chmod(store / "runs" / run, 0o755)
    meta.unlink()
    os.mkfifo(meta)


def _store_marker_damaged(store: Path) -> None:
    marker = store / "store.json"
    os.chmod(marker, 0o644)
    marker.write_text("garbage")


DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("ref-is-a-directory", _ref_is_a_directory, "broken-ref"),
    ("workspace-record", _workspace_record_damaged, "damaged-workspace"),
    ("checkout", _checkout_damaged, "damaged-checkout"),
    ("fifo-among-objects", _fifo_among_objects, "corrupt-object"),
    ("fifo-as-meta", _fifo_as_meta, "damaged-run"),
]


def _verify(store: Path, *args: str) -> tuple[int, dict[str, object]]:
    done = run_pipex("verify", "--json", *args, "--store", str(store), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.proc.returncode, (done.events.items[-1] if done.events.items else {})


@pytest.mark.parametrize(("name", "damage", "kind"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_verify_finds_the_damage_repair_mends_it_and_the_next_build_works(
    tmp_path: Path, store: Path, name: str, damage: Callable[[Path], None], kind: str
) -> None:
    project = write_project(tmp_path / "p", PIPELINE)
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    damage(store)
    code, report = _verify(store)
    assert code == 1 and kind in report["counts"], report  # type: ignore[operator]
    code, report = _verify(store, "--repair")
    assert code == 1 and report["repaired"], report
    code, report = _verify(store)
    assert code == 0 and report["ok"], report
    again = run_pipex("build", "--json", store=store, cwd=project, timeout=120)
    assert again.proc.returncode == 0, again.stderr + again.stdout
    assert again.events.steps("STEP_FINISHED") | again.events.steps("STEP_CACHED") == {"a", "b"}
    assert run_pipex("cat", "dmg", "b", "b", store=store, cwd=project).stdout.strip() == "a"


def test_a_damaged_store_marker_is_mended_by_verify_repair_and_nothing_else(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", PIPELINE)
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    _store_marker_damaged(store)
    refused = run_pipex("build", store=store, cwd=project)
    assert refused.proc.returncode == 2 and "pipex verify --repair" in refused.stderr, refused.stderr
    code, report = _verify(store, "--repair")
    assert code == 0, report
    assert json.loads((store / "store.json").read_text()) == {"format": 1}
    again = run_pipex("build", "--json", store=store, cwd=project)
    assert again.proc.returncode == 0 and again.events.steps("STEP_CACHED") == {"a", "b"}, again.stderr


def test_verify_does_not_hang_on_a_fifo_anywhere(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", PIPELINE)
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    tree_dir = next(p for p in (store / "trees").iterdir() if p.is_dir())
    os.mkfifo(tree_dir / ("ef" * 15 + ".json"))
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(_verify(store)[0]), daemon=True)
    thread.start()
    thread.join(60)
    assert done == [1], "verify hung or found nothing"
