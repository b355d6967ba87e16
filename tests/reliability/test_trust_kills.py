"""After a kill: no secret on disk, no container left (exec --ephemeral, rm, SIGHUP) — issue 10, items 7 and 13."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .conftest import BUSYBOX, containers, run_pipex, start_pipex, wait_running, write_project

pytestmark = pytest.mark.docker

SECRET_VALUE = "s3cr3t-" + os.urandom(6).hex()


def _files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        found.append(path)
            except OSError:
                continue
    return found


def _tmp_secret_dirs() -> set[str]:
    import tempfile

    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("pipex-secrets-")}


def test_no_secret_outlives_a_killed_build(tmp_path: Path, store: Path) -> None:
    project = write_project(
        tmp_path / "p",
        f"""\
        id: secret
        steps:
          - id: s
            image: {BUSYBOX}
            secrets: [{{name: token, env: PIPEX_TEST_TOKEN}}]
            cmd: test -f /run/secrets/token && sleep 30
        """,
    )
    before = _tmp_secret_dirs()
    build = start_pipex("build", "--json", store=store, cwd=project, env={"PIPEX_TEST_TOKEN": SECRET_VALUE})
    wait_running(store, "s")
    os.kill(build.pid, signal.SIGKILL)
    build.wait(30)
    assert _tmp_secret_dirs() == before, "a secret dir was left in the system temp dir"
    # The very next command, whatever it is, clears the dead build's staging first.
    listed = run_pipex("list", store=store, cwd=project)
    assert listed.proc.returncode == 0, listed.stderr
    assert _files_holding(store, SECRET_VALUE.encode()) == []
    # And the next build removes the killed build's container.
    run_pipex("build", store=store, cwd=project, env={"PIPEX_TEST_TOKEN": "other"}, timeout=120)
    assert containers(store) == []


SLOW = f"id: slow\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: sleep 60; echo s > /output/s}}\n"


def test_a_killed_exec_ephemeral_leaves_no_container_after_the_next_command(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", f"id: ex\nsteps:\n  - {{id: a, image: {BUSYBOX}, cmd: echo a > /output/a}}\n")
    assert run_pipex("build", store=store, cwd=project).proc.returncode == 0
    (project / "one.yaml").write_text(f"id: e\nimage: {BUSYBOX}\ncmd: sleep 60\n")
    ephemeral = start_pipex("exec", "ex", "-f", "one.yaml", "--ephemeral", store=store, cwd=project)
    wait_running(store, "e")
    os.kill(ephemeral.pid, signal.SIGKILL)
    ephemeral.wait(30)
    assert containers(store), "the kill should have left the container (else this test shows nothing)"
    (project / "two.yaml").write_text(f"id: f\nimage: {BUSYBOX}\ncmd: 'true'\n")
    again = run_pipex("exec", "ex", "-f", "two.yaml", "--ephemeral", store=store, cwd=project)
    assert again.proc.returncode == 0, again.stderr
    assert containers(store) == []


def test_rm_of_a_workspace_whose_build_was_killed_removes_its_containers(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", SLOW)
    build = start_pipex("build", store=store, cwd=project)
    wait_running(store, "s")
    os.kill(build.pid, signal.SIGKILL)
    build.wait(30)
    removed = run_pipex("rm", "slow", store=store, cwd=project)
    assert removed.proc.returncode == 0, removed.stderr
    assert containers(store) == []


def test_sighup_stops_a_build_and_removes_its_containers(tmp_path: Path, store: Path) -> None:
    project = write_project(tmp_path / "p", SLOW)
    build = start_pipex("build", store=store, cwd=project)
    wait_running(store, "s")
    build.proc.send_signal(signal.SIGHUP)
    assert build.wait(60) == 130, build.stderr
    assert containers(store) == []
