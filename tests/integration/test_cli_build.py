"""`pipex build` / `pipex run` as a user types them: exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .build_helpers import BUSYBOX

PIPELINE = f"""\
id: cli
steps:
  - {{id: build, image: {BUSYBOX}, cmd: echo b > /output/b}}
  - {{id: report, image: {BUSYBOX}, inputs: [{{step: build}}], cmd: echo r > /output/r}}
"""


def _project(tmp_path: Path, text: str = PIPELINE) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "pipeline.yaml").write_text(textwrap.dedent(text))
    return root


def _pipex(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PIPEX_STORE=str(tmp_path / "store"), NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "pipex", *args], env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-j", "0"], "Invalid value for '-j' / '--concurrency'"),
        (["-j", "abc"], "Invalid value for '-j' / '--concurrency'"),
        (["reprot"], "unknown target 'reprot' in pipeline 'cli'; did you mean 'report'?"),
        (["--force=nope"], "nope"),
        (["-w", "../../x"], "invalid workspace name '../../x'"),
    ],
)
def test_bad_command_line_values_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    root = _project(tmp_path)
    done = _pipex(tmp_path, "build", "-f", str(root), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_pipeline_is_one_line_exit_2(tmp_path: Path) -> None:
    done = _pipex(tmp_path, "build", "-f", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pipeline" in done.stderr


def test_daemon_down_is_one_line_naming_docker_host(tmp_path: Path) -> None:
    root = _project(tmp_path)
    done = _pipex(tmp_path, "build", "-f", str(root), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 2, done.stderr
    assert "unix:///nonexistent/docker.sock" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.docker
def test_missing_image_fails_with_one_line(tmp_path: Path) -> None:
    root = _project(tmp_path, PIPELINE.replace(BUSYBOX, "pipex-test/no-such-image:1", 1))
    done = _pipex(tmp_path, "build", "-f", str(root))
    assert done.returncode == 1, done.stderr
    assert "image 'pipex-test/no-such-image:1' not found locally and cannot be pulled" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.docker
def test_failed_step_exits_1_and_success_exits_0(tmp_path: Path) -> None:
    root = _project(tmp_path, PIPELINE.replace("echo r > /output/r", "exit 7"))
    failed = _pipex(tmp_path, "build", "-f", str(root))
    assert failed.returncode == 1
    assert "report" in failed.stderr and "exit code 7" in failed.stderr
    ok = _pipex(tmp_path, "build", "-f", str(root), "build")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.docker
def test_run_keeps_the_original_pipex_form(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _pipex(tmp_path, "run", str(root), "-c", "2")
    assert first.returncode == 0, first.stderr
    forced = _pipex(tmp_path, "run", "-f", str(root), "--json")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.count('"STEP_FINISHED"') == 2
