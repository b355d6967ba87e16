"""Promises of a build that outside probing broke (issue 10): forced runs, strict shell, empty dirs, missing images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import BUSYBOX, assert_one_line_errors, run_pipex, verify_store, write_project

pytestmark = pytest.mark.docker

STAMPED = f"""\
id: forced
steps:
  - id: gen
    image: {BUSYBOX}
    cmd: cat /proc/sys/kernel/random/uuid | tee /output/stamp
  - id: use
    image: {BUSYBOX}
    inputs: [{{step: gen}}]
    cmd: cp /input/gen/stamp /output/seen
"""


def _cat(project: Path, store: Path, step: str, path: str) -> str:
    done = run_pipex("cat", "forced", step, path, store=store, cwd=project)
    assert done.proc.returncode == 0, done.stderr
    return done.stdout


def test_a_forced_run_becomes_the_steps_run_for_cat_logs_dependants_and_the_next_build(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", STAMPED)
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    first = _cat(project, store, "gen", "stamp")

    forced = run_pipex("build", "--force=gen", "--json", store=store, cwd=project)
    assert forced.proc.returncode == 0, forced.stderr
    second = _cat(project, store, "gen", "stamp")
    assert second != first, "cat shows the old output after --force"
    assert _cat(project, store, "use", "seen") == second, "the dependant saw another output than the step's run"
    logs = run_pipex("logs", "forced", "gen", "--stream", "stdout", store=store, cwd=project)
    assert second.strip() in logs.stdout and first.strip() not in logs.stdout, logs.stdout
    finished = {e["step"]: e for e in forced.events.of("STEP_FINISHED")}
    inspected = json.loads(run_pipex("inspect", "forced", "gen", "--json", store=store, cwd=project).stdout)
    assert finished["gen"]["tree"] == inspected["output_tree"], (finished["gen"], inspected)

    again = run_pipex("build", "--json", store=store, cwd=project)
    assert again.events.steps("STEP_CACHED") == {"gen", "use"}
    assert _cat(project, store, "gen", "stamp") == second
    verify_store(store)


def test_a_string_command_stops_at_its_first_failing_line(tmp_path: Path, store: Path) -> None:
    project = write_project(
        tmp_path / "p",
        f"""\
        id: strict
        steps:
          - id: s
            image: {BUSYBOX}
            cmd: |
              false
              echo fine > /output/ok
        """,
    )
    done = run_pipex("build", "--json", store=store, cwd=project)
    assert done.proc.returncode == 1, done.stderr
    assert done.events.steps("STEP_FAILED") == {"s"}
    plan = run_pipex("plan", "--json", store=store, cwd=project)
    assert "cached" not in plan.stdout.split('"s"', 1)[-1].split("}", 1)[0]


def test_adding_an_empty_directory_to_a_mount_reruns_the_step(tmp_path: Path, store: Path) -> None:
    project = write_project(
        tmp_path / "p",
        f"""\
        id: dirs
        steps:
          - id: s
            image: {BUSYBOX}
            mounts: [{{host: data, container: /data}}]
            cmd: ls /data > /output/listing
        """,
        {"data/a.txt": "a"},
    )
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    (project / "data" / "empty").mkdir()
    again = run_pipex("build", "--json", store=store, cwd=project)
    assert again.events.steps("STEP_FINISHED") == {"s"}
    listing = run_pipex("cat", "dirs", "s", "listing", store=store, cwd=project).stdout
    assert "empty" in listing


def test_build_output_to_a_full_device_is_one_line(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", f"id: full\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: 'true'}}\n")
    with open("/dev/full", "w") as full:
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "pipex", "build", "--json"],
            cwd=project, env={**__import__("os").environ, "PIPEX_STORE": str(store)},
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert_one_line_errors(done.stderr)


def test_a_failed_step_shows_its_stdout_tail_names_pipex_logs_and_plan_says_last_run_failed(tmp_path: Path, store: Path) -> None:
    project = write_project(
        tmp_path / "p",
        f"id: loud\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: echo the real error is here; exit 3}}\n",
    )
    done = run_pipex("build", store=store, cwd=project)
    assert done.proc.returncode == 1
    assert "the real error is here" in done.stderr, done.stderr
    assert "pipex logs loud s" in done.stderr, done.stderr
    plan = run_pipex("plan", store=store, cwd=project)
    assert "last run failed (exit 3)" in plan.stdout, plan.stdout
    assert "never built" not in plan.stdout


def test_a_missing_image_with_keep_going_fails_one_step_and_the_stream_ends(tmp_path: Path, store: Path) -> None:
    project = write_project(
        tmp_path / "p",
        f"""\
        id: noimage
        steps:
          - {{id: gone, image: "pipex-test/absent:1", cmd: 'true'}}
          - {{id: after, image: {BUSYBOX}, inputs: [{{step: gone}}], cmd: 'true'}}
          - {{id: fine, image: {BUSYBOX}, cmd: echo ok > /output/ok}}
        """,
    )
    done = run_pipex("build", "-k", "--json", store=store, cwd=project, timeout=300)
    assert done.proc.returncode == 1, done.stderr
    assert done.events.steps("STEP_FAILED") == {"gone"}
    assert done.events.steps("STEP_SKIPPED") == {"after"}
    assert done.events.steps("STEP_FINISHED") == {"fine"}
    assert done.events.of("PIPELINE_FAILED"), "the NDJSON stream must end with the build's end"
    shown = json.loads(run_pipex("show", "noimage", "--json", store=store, cwd=project).stdout)
    assert {s["step"]: s["state"] for s in shown["steps"]}["gone"] == "failed"


def test_hardened_steps_work_for_a_non_root_caller(shared_tmp: Path, unprivileged: str) -> None:
    """capDrop: [ALL] (with and without a setup phase) as a normal user: the step can write its output."""
    from .conftest import chown_tree, remove_containers, verify_store

    pipeline = f"""\
    id: nonroot
    steps:
      - {{id: plain, image: {BUSYBOX}, cmd: echo x > /output/t, capDrop: [ALL]}}
      - id: installed
        image: {BUSYBOX}
        setup: {{cmd: "mkdir -p /opt && echo tool > /opt/t"}}
        cmd: cat /opt/t > /output/t
        readOnlyRootfs: true
        capDrop: [ALL]
    """
    root = write_project(shared_tmp / "project", pipeline)
    store = shared_tmp / "store"
    chown_tree(shared_tmp, unprivileged)
    try:
        done = run_pipex("build", "-f", str(root), "--store", str(store), "--json", user=unprivileged)
        assert done.proc.returncode == 0, done.stderr + done.stdout
        shown = run_pipex("cat", "nonroot", "installed", "t", "--store", str(store), user=unprivileged)
        assert shown.stdout.strip() == "tool"
        verify_store(store, user=unprivileged)
    finally:
        remove_containers(store)
