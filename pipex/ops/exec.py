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

A recorded exec goes through ``Runner.execute``, so it is exactly what a build
records (meta, logs, retries, the per-fingerprint lock).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipex.errors import InterruptedBuild, UsageError
from pipex.events import Event, EventKind, EventSink
from pipex.store.store import container_owner_lives

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


def _config_for(file: Path, workspace_root: Path | None) -> Any:
    from pipex.spec.config import Config, find_config_file, load_config

    for root in (file.parent, workspace_root):
        if root is not None and find_config_file(root) is not None:
            return load_config(root)
    return Config(root=file.parent.resolve())


def load_step(file: Path, step_id: str | None, *, config: Any, env_files: Sequence[Path] = ()) -> tuple[Any, Path]:
    """The Step of ``file`` (a single step or a pipeline; ``step_id`` picks one) and the root its paths use."""
    from pipex.errors import SpecErrors
    from pipex.spec.document import display_path, parse_document
    from pipex.spec.expand import expand_steps
    from pipex.spec.load import read_env_files
    from pipex.spec.schemas import PIPELINE_SCHEMA, load_schema
    from pipex.spec.validate import schema_errors

    file = Path(file)
    if not file.is_file():
        msg = f"no step file {file}"
        raise UsageError(msg)
    root = file.parent.resolve()
    doc = parse_document(file, shown=display_path(file))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error("expected a step (a mapping with id, image, cmd) or a pipeline with 'steps'")
    schema = load_schema(PIPELINE_SCHEMA)
    if "steps" in data:
        errors = schema_errors(data, schema, doc)
        raw_steps = list(data["steps"])
    else:
        doc = _single_step(doc)
        errors = schema_errors(data, {"$ref": "#/$defs/step", "$defs": schema["$defs"]}, doc)
        raw_steps = [data]
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    expanded = expand_steps(raw_steps, doc, root, read_env_files(env_files), config)
    if expanded.errors:
        raise expanded.errors[0] if len(expanded.errors) == 1 else SpecErrors(expanded.errors)
    steps = {s.id: s for s in expanded.steps}
    if step_id is None:
        if len(steps) != 1:
            msg = f"{display_path(file)} has {len(steps)} steps ({', '.join(steps)}); pick one with --step"
            raise UsageError(msg)
        return next(iter(steps.values())), root
    if step_id not in steps:
        msg = f"{display_path(file)} has no step '{step_id}'; its steps: {', '.join(steps)}"
        raise UsageError(msg)
    return steps[step_id], root


def _single_step(doc: Any) -> Any:
    """``doc`` whose errors at ``steps[0].x`` point at ``x``: the file is that one step."""
    from pipex.spec.document import Document

    class SingleStep(Document):
        def locate(self, parts: Sequence[Any], *, key: bool = False) -> tuple[int | None, int | None]:
            return super().locate(_strip(parts), key=key)

        def error(self, message: str, parts: Sequence[Any] = (), *, key: bool = False) -> Any:
            return super().error(message, _strip(parts), key=key)

    return SingleStep(**{f.name: getattr(doc, f.name) for f in dataclasses.fields(doc)})


def _strip(parts: Sequence[Any]) -> list[Any]:
    return list(parts[2:]) if len(parts) >= 2 and parts[0] == "steps" and parts[1] == 0 else list(parts)


def _input_trees(store: Any, workspace: str, step: Any, inputs: Sequence[str]) -> tuple[Any, dict[str, str | None]]:
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
    store: Any = None,
    sink: EventSink | None = None,
    on_output: Callable[[str, str, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExecResult:
    """Run the step of ``file`` in ``workspace`` against its current runs; see the module docstring.

    ``on_output(step, stream, line)`` receives the step's output lines when
    ``ephemeral`` (or ``verbose``). Raises InterruptedBuild (exit 130) on
    SIGINT/SIGTERM after removing the container.
    """
    from pipex import api

    opened = api.open_store_here(store) if not hasattr(store, "read_run") else store
    # The store lock, shared, from before the inputs are resolved until the step
    # is done: gc must not take them away meanwhile (not even for --ephemeral).
    with opened.shared_lock():
        return _exec_locked(
            opened, file, workspace, step_id=step_id, inputs=inputs, ephemeral=ephemeral, force=force,
            verbose=verbose, env_files=env_files, sink=sink, on_output=on_output, cancel=cancel,
        )


def _exec_locked(
    opened: Any,
    file: Path | str,
    workspace: str | None,
    *,
    step_id: str | None,
    inputs: Sequence[str],
    ephemeral: bool,
    force: bool,
    verbose: bool,
    env_files: Sequence[Path | str],
    sink: EventSink | None,
    on_output: Callable[[str, str, str], None] | None,
    cancel: threading.Event | None,
) -> ExecResult:
    from pipex import api
    from pipex.engine.plan import Planner
    from pipex.engine.runner import BuildOptions, Runner, RunJob, StepInterrupted, StepOutcome
    from pipex.spec.model import Pipeline
    from pipex.ops.workspaces import resolve_workspace

    sink = sink or (lambda event: None)
    name = resolve_workspace(opened, workspace)
    file = Path(file)
    config = _config_for(file, opened.workspace_project_root(name))
    step, root = load_step(file, step_id, config=config, env_files=[Path(f) for f in env_files])
    step, trees = _input_trees(opened, name, step, inputs)
    pipeline = Pipeline(id=name, root=root, file=file.absolute(), steps=(step,))
    cancel = cancel or threading.Event()
    planner = Planner(pipeline, opened, workspace=name, force=force, condition_env=api.condition_env(env_files))
    make_executor = api._executor_factory(config)

    def forward(event: Event) -> None:
        if event.kind is EventKind.STEP_LOG and on_output is not None:
            on_output(str(event.step), str(event.data.get("stream")), str(event.data.get("line", "")))
        else:
            sink(event)

    options = BuildOptions(concurrency=1, force=force, verbose=verbose or ephemeral or on_output is not None)
    with ExitStack() as stack:
        if not ephemeral:
            stack.enter_context(api._workspace_lock(opened, name, sink))
        runner = Runner(
            pipeline, opened, name, None, planner=planner, executor_factory=make_executor,
            options=options, sink=forward, cancel=cancel,
        )
        if ephemeral:
            # NOT runner.executor: creating it removes the workspace's leftovers, which would be a live build's containers.
            executor = make_executor()
            stack.callback(executor.close)
            # But containers whose starting process is gone (a killed exec --ephemeral) are garbage.
            # (Older pipex's containers carry no owner: spared.)
            executor.remove_leftovers({"pipex.store": str(opened.root)}, lambda labels: container_owner_lives(labels) is not False)
        else:
            executor = None
        try:
            with api._signals_cancel(cancel, lambda: _stop(runner, executor)):
                planner.resolve_images([step])
                image_id = planner.image_of(step)
                if image_id is None:
                    image_id = (executor or runner.executor).ensure_image(step.image, None, cancel)
                decided = planner.decide(step.id, input_trees=trees, image_id=image_id)
                job = RunJob(step, decided.fingerprint or "", dict(decided.document or {}), image_id, trees, "exec")
                if ephemeral:
                    return _ephemeral(runner, executor, job, name, cancel)
                if decided.run_id is not None and not force:
                    result = runner.reuse(step, decided.run_id, decided.output_tree)
                    sink(Event(EventKind.STEP_CACHED, step.id, {"runId": result.run_id, "tree": result.tree_id}))
                else:
                    sink(Event(EventKind.STEP_STARTING, step.id, {"reason": "; ".join(decided.reasons) or "exec", "fingerprint": job.fingerprint}))
                    try:
                        result = runner.execute(job)
                    except StepInterrupted:
                        raise InterruptedBuild("exec interrupted; nothing was recorded") from None
        finally:
            if runner.executor_started:
                runner.executor.close()
    if cancel.is_set():
        raise InterruptedBuild("exec interrupted; nothing was recorded")
    outcome = {StepOutcome.SUCCEEDED: "succeeded", StepOutcome.CACHED: "cached"}.get(result.outcome, "failed")
    return ExecResult(step.id, outcome, result.exit_code, result.run_id, result.tree_id, result.reason)


def _stop(runner: Any, executor: Any) -> None:
    if executor is not None:
        executor.stop_all()
    if runner.executor_started:
        runner.executor.stop_all()


def _ephemeral(runner: Any, executor: Any, job: Any, workspace: str, cancel: threading.Event) -> ExecResult:
    """Run ``job`` once in a staging dir that is then thrown away; nothing reaches the store."""
    with runner.store.staging_dir(f"exec-{job.step.id}") as staging, ExitStack() as stack:
        output, logs = staging / "output", staging / "logs"
        output.mkdir()
        logs.mkdir()
        invocation = runner.prepare_invocation(job, output, logs, stack)
        labels = {**invocation.labels, "pipex.workspace": f"{workspace}.exec-{os.getpid()}", "pipex.run": "ephemeral"}
        result = executor.run(dataclasses.replace(invocation, labels=labels), cancel)
    if result.cancelled or cancel.is_set():
        raise InterruptedBuild("exec interrupted")
    ok = result.exit_code == 0 and not result.timed_out
    reason = None if ok else (result.message or f"exit code {result.exit_code}")
    return ExecResult(job.step.id, "succeeded" if ok else "failed", result.exit_code, reason=reason)
