"""`pipex validate` and `pipex schema` as a user runs them: output, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from typer.testing import CliRunner

from pipex.cli.main import app
from pipex.cli import spec_cmds  # noqa: F401  (registers the commands)

GOOD = "steps:\n  - id: a\n    image: x\n    cmd: y\n  - id: b\n    image: x\n    cmd: y\n    inputs: [a]\n"


def _pipex(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pipex.cli.main import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PIPEX_DEBUG": ""},
    )


def test_validate_ok_prints_step_count(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": GOOD})
    result = _pipex("validate", cwd=root)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok: 2 steps in pipeline.yaml\n", "")


def test_validate_takes_a_directory_argument_or_f(project: Callable[..., Path]) -> None:
    root = project({"sub/pipeline.yml": GOOD, "other.yaml": GOOD})
    runner = CliRunner()
    result = runner.invoke(app, ["validate", "sub"])
    assert (result.exit_code, result.output) == (0, "ok: 2 steps in sub/pipeline.yml\n")
    result = runner.invoke(app, ["validate", "-f", str(root / "other.yaml")])
    assert (result.exit_code, result.output) == (0, "ok: 2 steps in other.yaml\n")


def test_validate_errors_are_one_line_each_with_exit_2(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": GOOD.replace("inputs: [a]", "inputs: [aa]\n    timeout: 3")})
    result = _pipex("validate", cwd=root)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "pipex: pipeline.yaml:9:5: steps[1].timeout: unknown field 'timeout' (did you mean 'timeoutSec'?)",
    ]


def test_validate_semantic_error_exit_2(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": GOOD.replace("inputs: [a]", "inputs: [aa]")})
    result = _pipex("validate", cwd=root)
    assert (result.returncode, result.stderr) == (
        2,
        "pipex: pipeline.yaml:8:14: steps[1].inputs[0]: unknown step 'aa' (did you mean 'a'?)\n",
    )


def test_validate_yaml_syntax_error_has_no_traceback(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": "steps: [\n"})
    result = _pipex("validate", cwd=root)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("pipex: pipeline.yaml:2:1: invalid YAML:")


def test_validate_missing_pipeline(project: Callable[..., Path]) -> None:
    root = project({})
    result = _pipex("validate", cwd=root)
    assert (result.returncode, result.stderr) == (
        2,
        "pipex: no pipeline file (pipeline.yml, pipeline.yaml, pipeline.json) in the current directory\n",
    )


def test_validate_uses_env_file_option(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": GOOD, "bad.env": "nonsense\n"})
    result = _pipex("validate", "--env-file", "bad.env", cwd=root)
    assert (result.returncode, result.stderr) == (2, "pipex: bad.env:1:1: expected KEY=VALUE, got 'nonsense'\n")


def test_schema_prints_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "pipex pipeline"
    result = CliRunner().invoke(app, ["schema", "--config"])
    assert json.loads(result.output)["title"].startswith("pipex project configuration")


def test_validate_refuses_both_argument_and_f(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": GOOD})
    result = _pipex("validate", ".", "-f", "pipeline.yaml", cwd=root)
    assert (result.returncode, result.stderr) == (
        2,
        "pipex: give the pipeline either as an argument or with -f, not both\n",
    )
