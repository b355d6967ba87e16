"""``pipex exec``: run one step from a file against a workspace's existing runs.

The step file holds one step (a mapping with ``id``, ``image``, ``cmd``...) or a
whole pipeline (``steps:``, pick one with ``--step``). Its ``inputs`` and the
``--input [ALIAS=]STEP`` options name steps *of the workspace*: their current
runs' outputs are mounted read-only at ``/input/<ALIAS>/``. Host paths
(``mounts``, ``sources``, ``envFile``) are relative to the step file.

The step is fingerprinted like any build step, so a step that already ran with
the same inputs is cached (``--force`` runs it anyway). Its run is recorded and
becomes the workspace's ref for the step id, under the workspace lock.
``--ephemeral`` streams the step's output to the terminal and keeps nothing:
no run, no ref, no lock; its container is labelled apart so that a build of
the workspace does not take it for a leftover.

An exec runs in a ``BuildSession`` and a recorded exec goes through
``JobRunner.execute``, so it is exactly what a build records (meta, logs,
retries, the per-fingerprint lock).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import InterruptedBuild, UsageError
from pipex.events import Event, EventKind, EventSink
from pipex.ops.project import condition_env, executor_factory, open_store_here
from pipex.spec.step_file import config_for, load_step

if TYPE_CHECKING:
    from pipex.engine.job import JobRunner, StepJob
    from pipex.engine.session import BuildSession
    from pipex.spec.model import Step
    from pipex.store.store import Store

__all__ = ["ExecResult", "load_step", "parse_input", "exec_step"]


@dataclass(frozen=True)
class ExecResult:
    """How an exec ended: the step's outcome, its run (None when ephemeral) and exit code."""

    step: str
    outcome: str  # "succeeded", "cached", "failed"
    exit_code: int | None
    run_id: str | None = None
    tree_id: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the step failed."""
        return self.outcome != "failed"


def parse_input(value: str) -> tuple[str, str]:
    """``ALIAS=STEP`` or ``STEP`` -> (alias, step)."""
    alias, sep, step = value.partition("=")
    if not sep:
        alias, step = value, value
    if not alias or not step:
        msg = f"--input {value!r}: use STEP or ALIAS=STEP"
        raise UsageError(msg)
    return alias, step


def _input_trees(store: Store, workspace: str, step: Step, inputs: Sequence[str]) -> tuple[Step, dict[str, str | None]]:
    """The step with ``--input`` added, and the tree each input mounts (the workspace's current runs)."""
    from pipex.spec.model import InputRef

    refs = list(step.inputs)
    sources = {ref.step: ref.step for ref in refs}
    for value in inputs:
        alias, source = parse_input(value)
        sources[alias] = source
        refs = [r for r in refs if r.step != alias] + [InputRef(alias)]
    trees: dict[str, str | None] = {}
    for ref in refs:
        run_id = store.get_ref(workspace, sources[ref.step])
        if run_id is None:
            if ref.optional:
                trees[ref.step] = None
                continue
            known = ", ".join(store.workspace_refs(workspace)) or "none"
            msg = f"input '{ref.step}': workspace '{workspace}' has no successful run of step '{sources[ref.step]}' (its steps: {known})"
            raise UsageError(msg)
        trees[ref.step] = store.read_run(run_id).output_tree
    return dataclasses.replace(step, inputs=tuple(refs)), trees


def exec_step(
    file: Path | str,
    workspace: str | None = None,
    *,
    step_id: str | None = None,
    inputs: Sequence[str] = (),
    ephemeral: bool = False,
    force: bool = False,
    verbose: bool = False,
    env_files: Sequence[Path | str] = (),
    store: Store | Path | str | None = None,
    sink: EventSink | None = None,
    on_output: Callable[[str, str, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExecResult:
    """Run the step of ``file`` in ``workspace`` against its current runs; see the module docstring.

    ``on_output(step, stream, line)`` receives the step's output lines when
    ``ephemeral`` (or ``verbose``). Raises InterruptedBuild (exit 130) on
    SIGINT/SIGTERM after removing the container.
    """
    from pipex.engine.job import JobRunner, StepJob
    from pipex.engine.plan import Planner
    from pipex.engine.results import BuildOptions, StepInterrupted, StepOutcome
    from pipex.engine.session import BuildSession
    from pipex.ops.workspaces import resolve_workspace
    from pipex.spec.model import Pipeline

    the_store = open_store_here(store)
    sink = sink or (lambda event: None)

    def forward(event: Event) -> None:
        if event.kind is EventKind.STEP_LOG and on_output is not None:
            on_output(str(event.step), str(event.data.get("stream")), str(event.data.get("line", "")))
        else:
            sink(event)

    # The store lock, shared, from before the inputs are resolved until the step
    # is done: gc must not take them away meanwhile (not even for --ephemeral).
    with the_store.shared_lock():
        name = resolve_workspace(the_store, workspace)
        file = Path(file)
        config = config_for(file, the_store.workspace_project_root(name))
        step, root = load_step(file, step_id, config=config, env_files=[Path(f) for f in env_files])
        step, trees = _input_trees(the_store, name, step, inputs)
        pipeline = Pipeline(id=name, root=root, file=file.absolute(), steps=(step,))
        session = BuildSession(
            the_store, name, executor_factory=executor_factory(config), sink=forward, cancel=cancel, ephemeral=ephemeral
        )
        planner = Planner(pipeline, the_store, workspace=name, force=force, condition_env=condition_env(env_files))
        options = BuildOptions(concurrency=1, force=force, verbose=verbose or ephemeral or on_output is not None)
        runner = JobRunner(session, root=root, options=options, host_hasher=planner.host_hasher)
        with ExitStack() as stack:
            if not ephemeral:
                stack.enter_context(session.workspace_lock())
            with session.running():
                planner.images.resolve([step])
                image_id = planner.images.image_of(step) or session.image_id(step.image)
                decided = planner.decide(step.id, input_trees=trees, image_id=image_id)
                if ephemeral:
                    return _ephemeral(session, runner, StepJob.from_plan(step, decided, trees, "exec"))
                if decided.run_id is not None:
                    result = runner.reuse(step, decided.run_id, decided.output_tree)
                    assert result is not None  # a local run: nothing to adopt
                    sink(Event(EventKind.STEP_CACHED, step.id, {"runId": result.run_id, "tree": result.tree_id}))
                else:
                    job = StepJob.from_plan(step, decided, trees, "; ".join(decided.reasons) or "exec")
                    sink(Event(EventKind.STEP_STARTING, step.id, {"reason": job.reason, "fingerprint": job.fingerprint}))
                    try:
                        result = runner.execute(job)
                    except StepInterrupted:
                        raise InterruptedBuild("exec interrupted; nothing was recorded") from None
    if session.cancel.is_set():
        raise InterruptedBuild("exec interrupted; nothing was recorded")
    outcome = {StepOutcome.SUCCEEDED: "succeeded", StepOutcome.CACHED: "cached"}.get(result.outcome, "failed")
    return ExecResult(step.id, outcome, result.exit_code, result.run_id, result.tree_id, result.reason)


def _ephemeral(session: BuildSession, runner: JobRunner, job: StepJob) -> ExecResult:
    """Run ``job`` once in a staging dir that is then thrown away; nothing reaches the store.

    Its container is labelled apart (workspace ``<ws>.exec-<pid>``, run
    ``ephemeral``), so a build of the workspace does not take it for a leftover.
    """
    from pipex.engine.job import failure_reason

    with session.store.staging_dir(f"exec-{job.step.id}") as staging:
        output, logs = staging / "output", staging / "logs"
        output.mkdir()
        logs.mkdir()
        labels = {"pipex.workspace": f"{session.workspace}.exec-{os.getpid()}", "pipex.run": "ephemeral"}
        result = runner.run_once(job, output, logs, labels=labels)
    if result.cancelled or session.cancel.is_set():
        raise InterruptedBuild("exec interrupted")
    reason = None if result.ok else failure_reason(result)
    return ExecResult(job.step.id, "succeeded" if result.ok else "failed", result.exit_code, reason=reason)
