"""Races outside probing found (issue 10, item 15): two detached builds at once; gc under a running exec --ephemeral."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import BUSYBOX, run_pipex, start_pipex, verify_store, wait_running, write_project

pytestmark = pytest.mark.docker

SLOW = f"""\
id: race
steps:
  - {{id: a, image: {BUSYBOX}, cmd: sleep 2; echo a > /output/a}}
  - {{id: b, image: {BUSYBOX}, inputs: [{{step: a}}], cmd: cp /input/a/a /output/b}}
"""


def test_two_detached_builds_at_the_same_moment_one_starts_and_the_other_is_refused(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", SLOW)
    first = start_pipex("build", "--detach", "--json", store=store, cwd=project)
    second = start_pipex("build", "--detach", "--json", store=store, cwd=project)
    codes = sorted([first.wait(60), second.wait(60)])
    assert codes == [0, 2], (first.stderr, second.stderr)
    refused = first if first.proc.returncode == 2 else second
    assert "already running" in refused.stderr, refused.stderr
    attached = run_pipex("attach", "race", "--json", store=store, cwd=project, timeout=120)
    assert attached.proc.returncode == 0, attached.stderr
    starts = attached.events.of("PIPELINE_START")
    assert len(starts) == 1, attached.stdout  # one build's record, not two interleaved
    assert sorted(e["step"] for e in attached.events.of("STEP_FINISHED")) == ["a", "b"]
    status = json.loads((store / "workspaces" / "race" / "build.json").read_text())
    assert status["state"] == "finished" and status["exitCode"] == 0
    verify_store(store)


def test_gc_after_rm_waits_for_a_running_ephemeral_exec_and_its_input_survives(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", f"id: eph\nsteps:\n  - {{id: a, image: {BUSYBOX}, cmd: echo payload > /output/a}}\n")
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    (project / "one.yaml").write_text(
        f"id: e\nimage: {BUSYBOX}\ninputs: [{{step: a}}]\ncmd: sleep 3; cat /input/a/a\n"
    )
    ephemeral = start_pipex("exec", "eph", "-f", "one.yaml", "--ephemeral", store=store, cwd=project)
    wait_running(store, "e")
    assert run_pipex("rm", "eph", store=store, cwd=project).proc.returncode == 0
    collector = start_pipex("gc", "--json", store=store, cwd=project)
    assert ephemeral.wait(60) == 0, ephemeral.stderr
    assert "payload" in ephemeral.stdout, ephemeral.stdout
    assert collector.wait(60) == 0, collector.stderr
    report = collector.events.items[-1]
    assert report["runs"] == 1, report  # gc ran after the exec, and then freed the removed workspace's run
    verify_store(store)
