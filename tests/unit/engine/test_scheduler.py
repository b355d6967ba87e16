"""The scheduler with a recording executor (no Docker): scheduling, failures, retries, early cutoff.

The executor here is a test double that writes the step's command text into
its output; real containers are exercised in tests/integration.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipex.executor.base import ExecutionResult, Invocation, Phase
from pipex.engine.plan import Planner
from pipex.events import Event, EventKind
from pipex.engine.job import JobRunner
from pipex.engine.results import BuildOptions, BuildResult
from pipex.engine.scheduler import Scheduler
from pipex.engine.session import BuildSession, ExecutorFactory
from pipex.spec.model import InputRef, Pipeline, Step
from pipex.store import Store

IMAGE = "img:1"
IMAGE_ID = "sha256:" + "a" * 64


class RecordingExecutor:
    """Runs `cmd` = ("sleep-then-write", seconds, text, exit code) by writing text to output/out."""

    def __init__(self) -> None:
        self.started: list[tuple[str, float]] = []
        self.finished: list[tuple[str, float]] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def run(self, invocation: Invocation, cancel: threading.Event) -> ExecutionResult:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.started.append((invocation.step_id, time.monotonic()))
        _, seconds, text, code = invocation.cmd
        time.sleep(float(seconds))
        (invocation.output_dir / "out").write_text(text)
        invocation.stdout_path.write_text(f"{invocation.step_id} ran\n")
        invocation.stderr_path.write_text("")
        with self._lock:
            self.running -= 1
            self.finished.append((invocation.step_id, time.monotonic()))
        now = time.time()
        code = int(code)
        return ExecutionResult(code, False, False, Phase.RUN if code else None, IMAGE_ID, now, now, None)

    def ensure_image(self, ref: str, progress: Any = None, cancel: Any = None) -> str:
        return IMAGE_ID

    def remove_leftovers(self, labels: Any, keep: Any = None) -> int:
        return 0

    def stop_all(self) -> None:
        return None

    def close(self) -> None:
        return None


def _step(step_id: str, *inputs: str, seconds: float = 0.0, text: str | None = None, code: int = 0, **fields: Any) -> Step:
    cmd = ("sleep-then-write", str(seconds), text if text is not None else step_id, str(code))
    return Step(id=step_id, image=IMAGE, cmd=cmd, inputs=tuple(InputRef(i) for i in inputs), **fields)


def _build(tmp_path: Path, steps: list[Step], executor: RecordingExecutor, **options: Any) -> tuple[Any, list[Event]]:
    pipeline = Pipeline(id="demo", root=tmp_path, file=tmp_path / "pipeline.yaml", steps=tuple(steps))
    store = Store.open(tmp_path / "store")
    force = options.pop("force", False)
    planner = Planner(pipeline, store, workspace="demo", force=force, image_resolver=lambda refs: {r: IMAGE_ID for r in refs})
    events: list[Event] = []
    result = _schedule(pipeline, store, planner, lambda: executor, BuildOptions(force=force, **options), events.append)
    return result, events


def _schedule(
    pipeline: Pipeline, store: Store, planner: Planner, factory: ExecutorFactory, options: BuildOptions, sink: Any
) -> BuildResult:
    """What ``pipex build`` does with a plan: a session, a job runner and the scheduler's loop."""
    session = BuildSession(store, "demo", executor_factory=factory, sink=sink, cancel=threading.Event())
    jobs = JobRunner(session, root=pipeline.root, options=options, host_hasher=planner.host_hasher)
    with session.running():
        return Scheduler(pipeline, planner.plan(), planner=planner, session=session, jobs=jobs, options=options).run()


def _outcomes(result: Any) -> dict[str, str]:
    return {r.step_id: r.outcome.value for r in result.results}


def test_a_step_starts_when_its_own_inputs_are_done_not_its_level(tmp_path: Path) -> None:
    executor = RecordingExecutor()
    steps = [_step("slow", seconds=0.6), _step("fast", seconds=0.0), _step("after_fast", "fast")]
    result, _ = _build(tmp_path, steps, executor, concurrency=3)
    assert result.ok
    started = dict(executor.started)
    finished = dict(executor.finished)
    assert started["after_fast"] < finished["slow"]


def test_concurrency_bounds_running_steps(tmp_path: Path) -> None:
    executor = RecordingExecutor()
    steps = [_step(f"s{i}", seconds=0.1) for i in range(6)]
    result, _ = _build(tmp_path, steps, executor, concurrency=2)
    assert result.ok
    assert executor.max_running == 2


def test_second_build_runs_nothing_and_creates_no_executor(tmp_path: Path) -> None:
    steps = [_step("a"), _step("b", "a")]
    _build(tmp_path, steps, RecordingExecutor())

    def no_executor() -> Any:
        raise AssertionError("an all-cached build must not create an executor")

    pipeline = Pipeline(id="demo", root=tmp_path, file=tmp_path / "pipeline.yaml", steps=tuple(steps))
    store = Store.open(tmp_path / "store")
    planner = Planner(pipeline, store, workspace="demo", image_resolver=lambda refs: {r: IMAGE_ID for r in refs})
    result = _schedule(pipeline, store, planner, no_executor, BuildOptions(), lambda e: None)
    assert _outcomes(result) == {"a": "cached", "b": "cached"}


def test_identical_output_after_rerun_keeps_dependant_cached(tmp_path: Path) -> None:
    executor = RecordingExecutor()
    _build(tmp_path, [_step("a", text="same"), _step("b", "a")], executor)
    # Same output bytes from a different command: b's input tree is unchanged.
    result, events = _build(tmp_path, [_step("a", seconds=0.01, text="same"), _step("b", "a")], executor)
    assert _outcomes(result) == {"a": "succeeded", "b": "cached"}


def test_changed_output_reruns_dependant_with_reason(tmp_path: Path) -> None:
    executor = RecordingExecutor()
    _build(tmp_path, [_step("a", text="v1"), _step("b", "a")], executor)
    result, events = _build(tmp_path, [_step("a", text="v2"), _step("b", "a")], executor)
    assert _outcomes(result) == {"a": "succeeded", "b": "succeeded"}
    starting = {e.step: e.data["reason"] for e in events if e.kind is EventKind.STEP_STARTING}
    assert starting["b"] == "input 'a' changed"


def test_failure_skips_dependants_and_stops_unless_keep_going(tmp_path: Path) -> None:
    steps = [_step("bad", code=2), _step("child", "bad"), _step("other", seconds=0.05)]
    result, _ = _build(tmp_path, steps, RecordingExecutor(), concurrency=1)
    assert _outcomes(result) == {"bad": "failed", "child": "skipped", "other": "skipped"}
    result, _ = _build(tmp_path / "kg", steps, RecordingExecutor(), concurrency=1, keep_going=True)
    assert _outcomes(result) == {"bad": "failed", "child": "skipped", "other": "succeeded"}
    assert not result.ok


@pytest.mark.parametrize("force", [True, frozenset({"b"})])
def test_force_reruns_cached_steps(tmp_path: Path, force: Any) -> None:
    steps = [_step("a"), _step("b", "a")]
    _build(tmp_path, steps, RecordingExecutor())
    executor = RecordingExecutor()
    result, _ = _build(tmp_path, steps, executor, force=force)
    ran = {name for name, _ in executor.started}
    assert ran == ({"a", "b"} if force is True else {"b"})
    assert result.ok
