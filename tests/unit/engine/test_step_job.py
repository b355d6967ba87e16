"""A step job is JSON: what a cluster backend ships to a worker comes back as the same job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipex.engine.job import JOB_FORMAT, StepJob
from pipex.spec.load import load_pipeline
from pipex.spec.model import Step, step_from_dict, step_to_dict

FULL = Path(__file__).resolve().parents[2] / "pipelines" / "full"


@pytest.fixture
def steps(tmp_path: Path, spec_cache: Path) -> tuple[Step, ...]:
    """Every step of the fixture that uses every field (setup, caches, secrets, resources, kits...)."""
    target = tmp_path / "full"
    shutil.copytree(FULL, target)
    return load_pipeline(target).steps


def test_every_field_of_every_step_survives_json(steps: tuple[Step, ...]) -> None:
    for step in steps:
        assert step_from_dict(json.loads(json.dumps(step_to_dict(step)))) == step


def test_a_job_round_trips_through_json(steps: tuple[Step, ...]) -> None:
    job = StepJob(steps[-1], "f" * 32, {"format": 2, "cmd": ["sh"]}, "sha256:" + "1" * 64, {"fetch": "a" * 32, "opt": None}, "never built")
    doc = json.loads(json.dumps(job.to_dict()))
    assert doc["format"] == JOB_FORMAT and doc["inputTrees"] == {"fetch": "a" * 32, "opt": None}
    assert StepJob.from_dict(doc) == job


def test_a_job_of_another_format_is_refused_with_why(steps: tuple[Step, ...]) -> None:
    doc = StepJob(steps[0], "f" * 32, {}, "sha256:x", {}, None).to_dict() | {"format": JOB_FORMAT + 1}
    with pytest.raises(ValueError, match="another version"):
        StepJob.from_dict(doc)
