"""pipex build as real processes: Ctrl-C, SIGTERM, leftovers of killed builds, concurrent builds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .build_helpers import BUSYBOX, KIT_IMAGES, containers, remove_containers

pytestmark = pytest.mark.docker


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A temp store; containers labelled with it are removed (and reported) afterwards."""
    path = tmp_path / "store"
    yield path
    assert remove_containers(path) == [], "containers left behind"


def _project(root: Path, pipeline: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.yaml").write_text(textwrap.dedent(pipeline))
    (root / ".pipex.yml").write_text(KIT_IMAGES)
    return root


def _pipex(*args: str, store: Path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PIPEX_STORE=str(store), NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "pipex", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


SLOW = f"""\
id: slow
steps:
  - {{id: quick, image: {BUSYBOX}, cmd: echo q > /output/q}}
  - {{id: sleepy, image: {BUSYBOX}, inputs: [{{step: quick}}], cmd: sleep 60}}
"""


def _wait_for_container(store: Path, step: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((c.get("Labels") or {}).get("pipex.step") == step for c in containers(store)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no container for step {step} appeared")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_step_removes_containers_and_keeps_finished_steps(tmp_path: Path, store: Path, signum: int) -> None:
    project = _project(tmp_path / "p", SLOW)
    proc = _pipex("build", "-f", str(project), "--json", store=store)
    _wait_for_container(store, "sleepy")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert containers(store) == []
    assert not any((store / "staging").iterdir())
    again = _pipex("build", "-f", str(project), "--json", "quick", store=store)
    out, err = again.communicate(timeout=60)
    events = [json.loads(line) for line in out.splitlines()]
    assert any(e["event"] == "STEP_CACHED" and e["step"] == "quick" for e in events), err


def test_next_build_removes_containers_of_a_killed_build(tmp_path: Path, store: Path) -> None:
    project = _project(tmp_path / "p", SLOW)
    proc = _pipex("build", "-f", str(project), store=store)
    _wait_for_container(store, "sleepy")
    proc.kill()
    proc.communicate(timeout=30)
    assert containers(store), "SIGKILL should have left the container running"
    fixed = _project(tmp_path / "p", SLOW.replace("sleep 60", "echo s > /output/s"))
    again = _pipex("build", "-f", str(fixed), store=store)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert containers(store) == []


def test_two_processes_needing_one_fingerprint_run_it_once(tmp_path: Path, store: Path) -> None:
    pipeline = f"""\
    id: shared
    steps:
      - {{id: work, image: {BUSYBOX}, cmd: sleep 2; date +%s%N > /output/stamp}}
    """
    project = _project(tmp_path / "p", pipeline)
    procs = [_pipex("build", "-f", str(project), "-w", f"ws{i}", "--json", store=store) for i in range(2)]
    outputs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    kinds = sorted(
        e["event"] for out, _ in outputs for e in map(json.loads, out.splitlines()) if e.get("step") == "work"
        and e["event"] in ("STEP_FINISHED", "STEP_CACHED")
    )
    assert kinds == ["STEP_CACHED", "STEP_FINISHED"]
