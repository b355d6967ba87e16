"""Every invalid pipeline in bad_cases.py fails with exactly the expected, located lines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
from bad_cases import CASES, Case

from pipex.errors import SpecError, SpecErrors
from pipex.spec.load import load_pipeline


def _load(case: Case, project: Callable[..., Path]) -> list[str]:
    root = project(case.files)
    if case.prepare:
        case.prepare(root)
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_pipeline(Path(case.pipeline) if case.pipeline else None, env_files=case.env_files)
    return str(info.value).splitlines()


def test_there_are_at_least_thirty_distinct_bad_inputs() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_pipeline_reports_exact_located_errors(case: Case, project: Callable[..., Path]) -> None:
    assert _load(case, project) == case.expected


def test_several_errors_are_raised_together_with_each_location(project: Callable[..., Path]) -> None:
    case = next(c for c in CASES if c.id == "several-errors")
    project(case.files)
    with pytest.raises(SpecErrors) as info:
        load_pipeline()
    located = [(e.line, e.column, e.path) for e in info.value.errors]
    assert located == [(5, 14, "steps[0].retries"), (6, 5, "steps[0].timout"), (7, 5, "steps[1]")]


def test_semantic_errors_in_different_steps_are_all_reported(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n"
            "  - id: a\n    image: x\n    cmd: y\n    inputs: [nope]\n"
            "  - id: b\n    image: x\n    cmd: y\n    mounts: [{host: missing, container: /m}]\n"
        }
    )
    with pytest.raises(SpecErrors) as info:
        load_pipeline()
    assert str(info.value).splitlines() == [
        "pipeline.yaml:5:14: steps[0].inputs[0]: unknown step 'nope'",
        "pipeline.yaml:9:21: steps[1].mounts[0].host: 'missing' does not exist in the project root",
    ]


def test_error_in_json_file_is_located(project: Callable[..., Path]) -> None:
    project({"pipeline.json": '{"steps": [\n  {"id": "a", "image": "x", "cmd": "y", "retries": "3"}\n]}\n'})
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.json:2:52: steps[0].retries: expected an integer, got '3'"


def test_kit_that_returns_an_invalid_step_is_reported_at_uses(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: a\n    uses: bad\n",
            ".pipex.yml": "kits:\n  bad: {file: bad.py}\n",
            "bad.py": "def expand(params, ctx):\n    return {'image': 'x', 'cmd': 'y', 'retries': -1}\n",
        }
    )
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == (
        "pipeline.yaml:3:11: steps[0].uses: kit 'bad' produced an invalid step: retries: must be at least 0, got -1"
    )


def test_kit_that_crashes_is_one_line(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: a\n    uses: bad\n",
            ".pipex.yml": "kits:\n  bad: {file: bad.py}\n",
            "bad.py": "def expand(params, ctx):\n    raise RuntimeError('boom')\n",
        }
    )
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.yaml:3:11: steps[0].uses: kit 'bad' failed: RuntimeError: boom"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_one_line(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": "steps: []\n"})
    (root / "pipeline.yaml").chmod(0)
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value).endswith("cannot read file: Permission denied")
