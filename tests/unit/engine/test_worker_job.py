"""What travels to a cluster worker and back: WorkerJob and JobResult as JSON, and what a worker refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipex import __version__
from pipex.engine.step_job import HostTree, JobResult, JobStatus, StepJob, WorkerJob
from pipex.ops.worker import run_worker_job
from pipex.spec.model import InputRef, PathMapping, Step

STEP = Step(id="report", image="busybox:1", cmd=("sh", "-c", "cat /input/count/c"), inputs=(InputRef("count"),),
            mounts=(PathMapping("data/x.txt", "/x.txt"),))  # fmt: skip
JOB = WorkerJob(
    StepJob(STEP, "ab" * 16, {"format": 2}, "sha256:" + "0" * 64, {"count": "cd" * 16}, "never built"),
    "build1", "team", {"url": "s3://cache/team", "endpoint": "http://127.0.0.1:9", "region": None},
    {"data/x.txt": HostTree("ef" * 16, True)}, forced=False, pipex_version=__version__,
)


def test_a_worker_job_and_a_result_round_trip_through_json() -> None:
    again = WorkerJob.from_dict(json.loads(json.dumps(JOB.to_dict())))
    assert again == JOB and again.key == "report-abababababababab"
    result = JobResult("ab" * 16, JobStatus.RAN, run_id="ab" * 16, tree="cd" * 16, worker="host/w1", timings={"totalMs": 5})
    assert JobResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert result.ok and not JobResult("x", JobStatus.FAILED).ok


def test_a_worker_refuses_another_format_or_version_in_its_answer_without_running_anything() -> None:
    doc = JOB.to_dict()
    answer = run_worker_job({**doc, "format": 99})
    assert answer["status"] == "failed" and "another version" in answer["reason"]
    answer = run_worker_job({**doc, "pipexVersion": "0.0.0-other"})
    assert answer["status"] == "failed" and "install one version everywhere" in answer["reason"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(JOB.to_dict())), value=_json)
def test_a_damaged_job_is_a_value_error_never_another_exception(key: str, value: Any) -> None:
    try:
        WorkerJob.from_dict({**JOB.to_dict(), key: value})
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(JobResult("x", "ran").to_dict())), value=_json)
def test_a_damaged_result_is_a_value_error_never_another_exception(key: str, value: Any) -> None:
    try:
        JobResult.from_dict({**JobResult("x", "ran").to_dict(), key: value})
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(step=_json)
def test_a_damaged_step_in_a_job_is_a_value_error(step: Any) -> None:
    doc = JOB.to_dict()
    doc["job"] = {**doc["job"], "step": step}
    with pytest.raises(ValueError):
        WorkerJob.from_dict(doc)


def test_a_job_that_mounts_a_path_it_does_not_ship_is_refused_before_anything_runs(tmp_path: Any) -> None:
    from dataclasses import replace

    from pipex.remote.blobs import MemoryBlobs
    from pipex.remote.cache import RemoteCache
    from pipex.remote.config import remote_config
    from pipex.ops.worker import _fetch_trees  # the worker's only way to lay paths out
    from pipex.errors import PipexError
    from pipex.store.store import Store

    hostile = replace(JOB, job=replace(JOB.job, step=replace(STEP, mounts=(PathMapping("../../../etc", "/host-etc"),)), input_trees={}))
    config = remote_config({"url": "s3://cache/team"}, environ={})
    assert config is not None
    with pytest.raises(PipexError, match="not shipped with the job"):
        _fetch_trees(hostile, Store.open(tmp_path / "s"), RemoteCache(config, MemoryBlobs()), tmp_path / "root")
