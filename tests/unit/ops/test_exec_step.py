"""pipex exec's step files and --input values, without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipex.spec.config import Config
from pipex.errors import PipexError, UsageError
from pipex.ops.exec import load_step, parse_input


def _load(path: Path, step: str | None = None):
    return load_step(path, step, config=Config(root=path.parent))


def test_a_single_step_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "s.env").write_text("A=1\n")
    (tmp_path / "step.yaml").write_text("id: x\nimage: busybox\ncmd: echo hi\nenvFile: s.env\n")
    step, root = _load(tmp_path / "step.yaml")
    assert (step.id, step.cmd, dict(step.env), root) == ("x", ("sh", "-e", "-c", "echo hi"), {"A": "1"}, tmp_path.resolve())


def test_errors_in_a_single_step_file_point_at_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "step.yaml").write_text("id: x\nimage: busybox\ncmd: echo\nenvFile: nope.env\n")
    with pytest.raises(PipexError) as error:
        _load(tmp_path / "step.yaml")
    assert str(error.value) == "step.yaml:4:10: envFile: 'nope.env' does not exist in the project root"


def test_a_pipeline_file_needs_step_when_it_has_several(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("steps:\n  - {id: a, image: b, cmd: echo}\n  - {id: c, image: b, cmd: echo}\n")
    with pytest.raises(UsageError, match=r"^p.yaml has 2 steps \(a, c\); pick one with --step$"):
        _load(tmp_path / "p.yaml")
    assert _load(tmp_path / "p.yaml", "c")[0].id == "c"
    with pytest.raises(UsageError, match="^p.yaml has no step 'z'; its steps: a, c$"):
        _load(tmp_path / "p.yaml", "z")


@pytest.mark.parametrize(("value", "parsed"), [("fetch", ("fetch", "fetch")), ("data=fetch", ("data", "fetch"))])
def test_input_values(value: str, parsed: tuple[str, str]) -> None:
    assert parse_input(value) == parsed


@pytest.mark.parametrize("value", ["=fetch", "data="])
def test_bad_input_values(value: str) -> None:
    with pytest.raises(UsageError, match="use STEP or ALIAS=STEP"):
        parse_input(value)
