"""The build loop: find ready steps, decide cached or run, execute, ingest, set refs, emit events.

Like ninja's Builder: the plan says what is dirty; this loop starts a step as
soon as its own inputs are done (no level barriers), bounded by ``concurrency``
worker threads, each of which drives one container through the executor.
Pending steps are decided when their inputs finish: their fingerprints use the
inputs' output *tree ids*, so an input that re-ran with identical output leaves
them cached (early cutoff).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import xxhash

from pipex import __version__
from pipex.errors import DockerUnavailableError, ImageError, InterruptedBuild, PipexError, StoreError
from pipex.events import Event, EventKind, EventSink
from pipex.spec.model import Pipeline, Step
from pipex.store._fs import rmtree
from pipex.store.store import container_owner_lives, owner_token

__all__ = ["StepOutcome", "StepResult", "BuildResult", "BuildOptions", "RunJob", "StepInterrupted", "Runner"]

_LOG_TAIL_LINES = 10
_MAX_RETRY_DELAY_MS = 3_600_000  # backoff doubles up to an hour, as the schema documents


class StepOutcome(str, Enum):
    """How a step ended in this build."""

    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    """The end of one step in one build.

    ``tree_id`` is the output tree dependants see: set for succeeded and cached
    steps, and for failed ones whose output could be kept (``allowFailure``).
    """

    step_id: str
    outcome: StepOutcome
    run_id: str | None = None
    tree_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    allow_failure: bool = False


@dataclass(frozen=True)
class BuildResult:
    """Every selected step's result, in plan order."""

    workspace: str
    results: tuple[StepResult, ...]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when no step failed (allowed failures do not count) and nothing was interrupted."""
        return not self.interrupted and not any(
            r.outcome is StepOutcome.FAILED and not r.allow_failure for r in self.results
        )

    def count(self, outcome: StepOutcome) -> int:
        """How many steps ended with ``outcome``."""
        return sum(1 for r in self.results if r.outcome is outcome)


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of one build; ``force`` is True (all) or the step ids to rebuild."""

    concurrency: int = os.cpu_count() or 2
    keep_going: bool = False
    force: bool | frozenset[str] = False
    verbose: bool = False

    def forced(self, step_id: str) -> bool:
        """Whether the cache is ignored for this step."""
        return self.force is True or (isinstance(self.force, frozenset) and step_id in self.force)


class StepInterrupted(Exception):
    """Raised by ``Runner.execute`` when the build is being cancelled."""


@dataclass
class RunJob:
    """A step decided to run: its fingerprint, document, image id and input trees."""

    step: Step
    fingerprint: str
    document: dict[str, Any]
    image_id: str
    input_trees: dict[str, str | None]
    reason: str | None


class Runner:
    """Run one plan against one store and workspace, reporting through ``sink``.

    ``planner`` (a ``pipex.engine.plan.Planner``) decides pending steps and re-checks
    host paths after a step ran; ``executor_factory``
    is called (once) only when a step really has to run, so an all-cached build
    never touches Docker.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: Any,
        workspace: str,
        plan: Any,
        *,
        planner: Any,
        executor_factory: Callable[[], Any],
        options: BuildOptions,
        sink: EventSink,
        cancel: threading.Event,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.workspace = workspace
        self.plan = plan
        self.planner = planner
        self.options = options
        self.sink = sink
        self.cancel = cancel
        self._executor_factory = executor_factory
        self._executor: Any = None
        self._executor_lock = threading.Lock()
        self._image_ids: dict[str, str] = {}
        self._fatal: PipexError | None = None  # the engine went away: ends the build with exit 2
        self._image_locks: dict[str, threading.Lock] = {}

    # -- the executor, made on first need -------------------------------------------------

    @property
    def executor(self) -> Any:
        """The executor; created (and connected) the first time a step must run."""
        with self._executor_lock:
            if self._fatal is not None:
                raise self._fatal
            if self._executor is None:
                executor = self._executor_factory()
                try:
                    removed = executor.remove_leftovers({"pipex.store": str(self.store.root)}, self._not_a_leftover)
                except DockerUnavailableError as error:
                    # No engine to start with: no step can run (a daemon lost mid-step
                    # is that step's failure instead). The build ends with exit 2.
                    self._fatal = self._fatal or error
                    executor.close()
                    raise
                self._executor = executor
                if removed:
                    # A killed build's container was still writing into its staging
                    # dir when Store.open swept it; now that it is gone, sweep again.
                    self.store.clear_stale_staging()
            return self._executor

    def _not_a_leftover(self, labels: Mapping[str, str]) -> bool:
        """Spare a container of this store whose starting process lives (any workspace's).

        Containers of older pipex versions carry no owner: only this
        workspace's are ours to judge (a build holds the workspace lock).
        """
        lives = container_owner_lives(labels)
        return lives if lives is not None else labels.get("pipex.workspace") != self.workspace

    @property
    def executor_started(self) -> bool:
        """Whether this build has created an executor (and so may have containers)."""
        return self._executor is not None

    def _image_id(self, ref: str) -> str:
        with self._executor_lock:
            lock = self._image_locks.setdefault(ref, threading.Lock())
        with lock:
            if ref not in self._image_ids:

                def progress(status: str) -> None:
                    self.sink(Event(EventKind.IMAGE_PULL, data={"image": ref, "status": status}))

                self._image_ids[ref] = self.executor.ensure_image(ref, progress, self.cancel)
                self.sink(Event(EventKind.IMAGE_PULL, data={"image": ref, "status": "ready", "done": True}))
            return self._image_ids[ref]

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> BuildResult:
        """Build every step of the plan; return when all are decided or the build is cancelled."""
        started = time.monotonic()
        order = [sp.step_id for sp in self.plan.steps]
        plans = {sp.step_id: sp for sp in self.plan.steps}
        results: dict[str, StepResult] = {}
        waiting = list(order)
        ready: list[RunJob] = []
        running: dict[Future[StepResult], str] = {}
        stopped_by: str | None = None
        self.sink(Event(EventKind.PIPELINE_START, data={"workspace": self.workspace, "steps": order}))
        with ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="pipex-step") as pool:
            while waiting or ready or running:
                if not self.cancel.is_set() and stopped_by is None:
                    for step_id in list(waiting):
                        step = self.pipeline.step(step_id)
                        if all(i.step in results or i.step not in plans for i in step.inputs):
                            waiting.remove(step_id)
                            decided = self._decide(step, plans[step_id], results)
                            if isinstance(decided, StepResult):
                                self._finish(decided, results)
                                if self._stops_the_build(decided) or self._fatal is not None:
                                    stopped_by = step_id
                                    break
                            else:
                                ready.append(decided)
                    while ready and len(running) < self.options.concurrency and stopped_by is None:
                        job = ready.pop(0)
                        self.sink(Event(EventKind.STEP_STARTING, job.step.id, {"reason": job.reason, "fingerprint": job.fingerprint}))
                        running[pool.submit(self.execute, job)] = job.step.id
                if self.cancel.is_set() or stopped_by is not None:
                    for job in ready:
                        waiting.append(job.step.id)
                    ready.clear()
                    if not running:
                        break
                if not running:
                    if waiting and not ready:
                        # No step runs and none became ready: the rest can never start.
                        break
                    continue
                done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    step_id = running.pop(future)
                    result = self._collect(future, step_id)
                    self._finish(result, results)
                    if self._stops_the_build(result) or (self._fatal is not None and stopped_by is None):
                        stopped_by = step_id
        interrupted = self.cancel.is_set()
        for step_id in waiting:
            if step_id not in results:
                reason = "build interrupted" if interrupted else "the Docker engine does not answer" if self._fatal else f"build stopped after '{stopped_by}' failed"
                self._finish(StepResult(step_id, StepOutcome.SKIPPED, reason=reason), results)
        build = BuildResult(self.workspace, tuple(results[s] for s in order if s in results), interrupted)
        summary = {
            "workspace": self.workspace,
            "ran": build.count(StepOutcome.SUCCEEDED),
            "cached": build.count(StepOutcome.CACHED),
            "skipped": build.count(StepOutcome.SKIPPED),
            "failed": build.count(StepOutcome.FAILED),
            "durationMs": int((time.monotonic() - started) * 1000),
        }
        if interrupted:
            summary["interrupted"] = True
        self._remove_killed_builds_containers()
        if self._fatal is not None:
            summary["reason"] = str(self._fatal).splitlines()[0]
            self.sink(Event(EventKind.PIPELINE_FAILED, data=summary))
            raise self._fatal
        self.sink(Event(EventKind.PIPELINE_FINISHED if build.ok else EventKind.PIPELINE_FAILED, data=summary))
        return build

    def _stops_the_build(self, result: StepResult) -> bool:
        """make's rule: the first failure stops the build unless -k (allowed failures never do)."""
        return (
            result.outcome is StepOutcome.FAILED
            and not result.allow_failure
            and not self.options.keep_going
            and not self.cancel.is_set()
        )

    def _remove_killed_builds_containers(self) -> None:
        """A killed build left staging behind: remove its containers even if nothing ran.

        Creating the executor removes this workspace's leftovers; an all-cached
        build contacts Docker only in this case, and only on a best-effort basis.
        """
        if self._executor is not None or not getattr(self.store, "found_stale_staging", False):
            return
        try:
            self.executor
        except PipexError:
            pass

    def _collect(self, future: Future[StepResult], step_id: str) -> StepResult:
        try:
            return future.result()
        except StepInterrupted:
            return StepResult(step_id, StepOutcome.SKIPPED, reason="build interrupted")
        except PipexError as error:
            if error is self._fatal:
                return StepResult(step_id, StepOutcome.SKIPPED, reason="the Docker engine does not answer")
            # An error outside the step's command (refused output, full disk)
            # is still a step failure: say which step and why.
            return self.fail_outside_command(self.pipeline.step(step_id), error)

    def fail_outside_command(self, step: Step, error: PipexError, fingerprint: str | None = None) -> StepResult:
        """A step that failed before or around its command (no image, engine gone): record, report, return it.

        Recorded as a failed run (best effort: the store may be what failed),
        so ``show`` and ``logs`` know about it, with its STEP_FAILED event.
        """
        reason = str(error).splitlines()[0]
        now = time.time()
        key = fingerprint or xxhash.xxh3_128_hexdigest(f"{self.workspace}/{step.id}".encode())
        run_id = f"{key}-failed-{int(now * 1000)}"
        meta = {
            "step": step.id, "workspace": self.workspace, "status": "failed", "fingerprint": fingerprint,
            "image_ref": step.image, "cmd": list(step.cmd), "exit_code": None, "message": reason,
            "started_at": now, "finished_at": now, "duration_ms": 0, "attempts": 0, "retries": step.retries,
            "output_tree": None, "bytes": 0, "files": 0, "pipex_version": __version__,
        }
        recorded: str | None = run_id
        try:
            self.store.record_run(run_id, meta, None)
            self.store.set_ref(self.workspace, step.id, run_id, kind="failed")
        except PipexError:
            recorded = None
        self.sink(
            Event(
                EventKind.STEP_FAILED,
                step.id,
                {"runId": recorded, "reason": reason, "exitCode": None, "allowFailure": step.allow_failure, "logs": self._logs_hint(step)},
            )
        )
        return StepResult(step.id, StepOutcome.FAILED, recorded, reason=reason, allow_failure=step.allow_failure)

    def _logs_hint(self, step: Step) -> str:
        return f"pipex logs {self.workspace} {step.id}"

    def _finish(self, result: StepResult, results: dict[str, StepResult]) -> None:
        results[result.step_id] = result
        if result.outcome is StepOutcome.SKIPPED:
            self.sink(Event(EventKind.STEP_SKIPPED, result.step_id, {"reason": result.reason}))
        elif result.outcome is StepOutcome.CACHED:
            self.sink(Event(EventKind.STEP_CACHED, result.step_id, {"runId": result.run_id, "tree": result.tree_id}))

    # -- deciding ------------------------------------------------------------------------

    def _decide(self, step: Step, step_plan: Any, results: Mapping[str, StepResult]) -> StepResult | RunJob:
        """Skip, reuse a run, or make a job; cheap enough for the main thread.

        Steps the plan already decided as cached are taken as they are; the
        others (run, pending) are decided again by the planner now that their
        inputs' output trees are known, so early cutoff applies.
        """
        from pipex.engine.plan import StepStatus

        if step_plan.status is StepStatus.SKIPPED:
            reason = "; ".join(step_plan.reasons) if step_plan.reasons else "skipped"
            return StepResult(step.id, StepOutcome.SKIPPED, reason=reason)
        input_trees: dict[str, str | None] = {}
        for ref in step.inputs:
            upstream = results.get(ref.step)
            usable = upstream is not None and upstream.tree_id is not None and (
                upstream.outcome is not StepOutcome.FAILED or upstream.allow_failure
            )
            if usable:
                input_trees[ref.step] = upstream.tree_id  # type: ignore[union-attr]
            elif ref.optional:
                input_trees[ref.step] = None
            else:
                state = upstream.outcome.value if upstream else "not built"
                return StepResult(step.id, StepOutcome.SKIPPED, reason=f"input '{ref.step}' {state}")
        if step_plan.status is StepStatus.CACHED:
            return self.reuse(step, step_plan.run_id, step_plan.output_tree)
        try:
            image_id = self.planner.image_of(step) or self._image_id(step.image)
        except (StepInterrupted, InterruptedBuild):
            return StepResult(step.id, StepOutcome.SKIPPED, reason="build interrupted")
        except DockerUnavailableError:
            if self._fatal is None:
                raise
            return StepResult(step.id, StepOutcome.SKIPPED, reason="the Docker engine does not answer")
        except ImageError as error:
            # A missing or unpullable image fails this step only: -k goes on.
            # (An engine that does not answer fails the whole build: exit 2.)
            return self.fail_outside_command(step, error)
        decided = self.planner.decide(step.id, input_trees=input_trees, image_id=image_id)
        if decided.status is StepStatus.CACHED:
            return self.reuse(step, decided.run_id, decided.output_tree)
        reason = "; ".join(decided.reasons) or "never built"
        return RunJob(step, decided.fingerprint, dict(decided.document), image_id, input_trees, reason)

    def reuse(self, step: Step, run_id: str, tree_id: str | None = None) -> StepResult:
        """Take an existing run as this step's result and point the workspace ref at it."""
        if tree_id is None:
            tree_id = self.store.read_run(run_id).meta.get("output_tree")
        if self.store.get_ref(self.workspace, step.id) != run_id:
            self.store.set_ref(self.workspace, step.id, run_id)
        return StepResult(step.id, StepOutcome.CACHED, run_id=run_id, tree_id=tree_id)

    # -- executing (worker threads) ---------------------------------------------------------

    def execute(self, job: RunJob) -> StepResult:
        """Run one job: wait for the same fingerprint elsewhere, then attempts, ingest, record.

        Raises StepInterrupted when the build is cancelled meanwhile.
        """
        step = job.step
        forced = self.options.forced(step.id)
        # Two builds (even in two processes) that need one fingerprint run it once.
        with self.store.lock(f"run-{job.fingerprint}"):
            if not forced and self.store.has_run(job.fingerprint):
                return self.reuse(step, job.fingerprint)
            if self.cancel.is_set():
                raise StepInterrupted
            with self.store.staging_dir(f"run-{step.id}") as staging:
                return self._attempts(job, staging)

    def _attempts(self, job: RunJob, staging: Path) -> StepResult:
        from pipex.executor.base import ExecutionResult

        step = job.step
        output = staging / "output"
        logs = staging / "logs"
        logs.mkdir()
        started = time.time()
        result: ExecutionResult | None = None
        attempts = step.retries + 1
        for attempt in range(1, attempts + 1):
            if output.exists():
                rmtree(output)
            output.mkdir()
            if step.user or (step.cap_drop and os.geteuid() != 0):
                # A step's own user is not us, and a root without capabilities
                # (capDrop) may not write a directory of ours either: it must be
                # able to write its output. The staging dir above stays private
                # (0700), so no one else can.
                os.chmod(output, 0o777)
            if attempt > 1:
                for stream in ("stdout", "stderr"):
                    previous = logs / f"{stream}.log"
                    if previous.exists():
                        previous.rename(logs / f"attempt-{attempt - 1}.{stream}.log")
            with ExitStack() as stack:
                invocation = self.prepare_invocation(job, output, logs, stack)
                result = self.executor.run(invocation, self.cancel)
            if result.cancelled or self.cancel.is_set():
                raise StepInterrupted
            if result.exit_code == 0 and not result.timed_out:
                break
            if attempt < attempts:
                delay_ms = min(step.retry_delay_ms * (2 ** (attempt - 1)), _MAX_RETRY_DELAY_MS)
                self.sink(
                    Event(
                        EventKind.STEP_RETRYING,
                        step.id,
                        {"attempt": attempt, "reason": _failure_reason(result), "delayMs": delay_ms, "exitCode": result.exit_code},
                    )
                )
                if self.cancel.wait(delay_ms / 1000):
                    raise StepInterrupted
        assert result is not None
        finished = time.time()
        succeeded = result.exit_code == 0 and not result.timed_out
        output_error: str | None = None
        try:
            ingested = self.store.ingest(output)
        except StoreError as error:
            # The output cannot be kept (a link leaving it, a fifo, a full disk): the step
            # fails, and its logs are still recorded so `pipex logs` shows what happened.
            output_error = f"output refused: {str(error).splitlines()[0]}"
            succeeded = False
            rmtree(output)
            output.mkdir()
            ingested = self.store.ingest(output)
        run_id = job.fingerprint
        if succeeded:
            changed = self.planner.recheck_host_paths(step, job.document)
            if changed:
                # The output serves this build but must not be found under a fingerprint
                # whose host files no longer match what the step read.
                run_id = f"{job.fingerprint}-unstable-{int(finished * 1000)}"
                self.sink(
                    Event(
                        EventKind.WARNING,
                        step.id,
                        {"message": f"step '{step.id}': {', '.join(changed[:3])} changed while it ran; its output is not cached"},
                    )
                )
        else:
            run_id = f"{job.fingerprint}-failed-{int(finished * 1000)}"
        meta = {
            "step": step.id,
            "workspace": self.workspace,
            "status": "succeeded" if succeeded else "failed",
            "fingerprint": job.fingerprint,
            "fingerprint_doc": job.document,
            "image_ref": step.image,
            "image_id": result.image_id or job.image_id,
            "cmd": list(step.cmd),
            "setup_cmd": list(step.setup.cmd) if step.setup else None,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "message": output_error or result.message,
            "started_at": started,
            "finished_at": finished,
            "duration_ms": int((finished - started) * 1000),
            "attempts": attempt,
            "retries": step.retries,
            "output_tree": ingested.tree_id,
            "bytes": ingested.bytes,
            "files": ingested.files,
            "pipex_version": __version__,
        }
        # A forced run *becomes* the step's run, even where one of its fingerprint exists.
        self.store.record_run(run_id, meta, logs, replace=succeeded and self.options.forced(step.id))
        duration_ms = meta["duration_ms"]
        if succeeded:
            self.store.set_ref(self.workspace, step.id, run_id)
            self.sink(
                Event(
                    EventKind.STEP_FINISHED,
                    step.id,
                    {"runId": run_id, "durationMs": duration_ms, "bytes": ingested.bytes, "files": ingested.files, "tree": ingested.tree_id},
                )
            )
            return StepResult(step.id, StepOutcome.SUCCEEDED, run_id, ingested.tree_id, duration_ms=duration_ms, exit_code=0)
        self.store.set_ref(self.workspace, step.id, run_id, kind="failed")
        reason = output_error or _failure_reason(result)
        self.sink(
            Event(
                EventKind.STEP_FAILED,
                step.id,
                {
                    "runId": run_id,
                    "exitCode": result.exit_code,
                    "reason": reason,
                    "durationMs": duration_ms,
                    "allowFailure": step.allow_failure,
                    # The error is where the step printed it: stderr, else stdout.
                    "logTail": _tail(self.store.run_path(run_id) / "stderr.log")
                    or _tail(self.store.run_path(run_id) / "stdout.log"),
                    "logs": self._logs_hint(step),
                },
            )
        )
        return StepResult(
            step.id,
            StepOutcome.FAILED,
            run_id,
            ingested.tree_id if step.allow_failure else None,
            reason=reason,
            exit_code=result.exit_code,
            duration_ms=duration_ms,
            allow_failure=step.allow_failure,
        )

    def prepare_invocation(self, job: RunJob, output: Path, logs: Path, stack: ExitStack) -> Any:
        """Fill the empty ``output`` dir (copyToOutput inputs) and return the job's Invocation."""
        from pipex.executor.base import Invocation, Mount

        step = job.step
        for ref in step.inputs:
            tree = job.input_trees.get(ref.step)
            if ref.copy_to_output and tree:
                self.store.export(tree, output)
        root = self.pipeline.root
        mounts: list[Mount] = []
        for ref in step.inputs:
            tree = job.input_trees.get(ref.step)
            if tree:
                mounts.append(Mount(self.store.checkout(tree), f"/input/{ref.step}", True))
        for mapping in step.mounts:
            mounts.append(Mount(root / mapping.host, mapping.container, True))
        for cache in step.all_caches:
            mounts.append(Mount(self.store.cache_dir(self.workspace, cache.name), cache.path, False))
        exclusive = sorted(c.name for c in step.all_caches if c.exclusive)

        @contextmanager
        def setup_lock() -> Iterator[None]:
            # Sorted, so two steps needing the same caches never deadlock.
            with ExitStack() as held:
                for name in exclusive:
                    held.enter_context(self.store.lock(f"cache-{self.workspace}-{name}"))
                yield

        resources = step.resources
        on_log = None
        if self.options.verbose:
            def on_log(stream: str, line: str, _step: str = step.id) -> None:
                self.sink(Event(EventKind.STEP_LOG, _step, {"stream": stream, "line": line}))

        def on_phase(phase: Any, _step: str = step.id) -> None:
            self.sink(Event(EventKind.STEP_PHASE, _step, {"phase": phase.value}))

        return Invocation(
            on_phase=on_phase,
            step_id=step.id,
            image=job.image_id,  # exactly the image the fingerprint names
            cmd=step.cmd,
            env=dict(step.env),
            output_dir=output,
            output_path=step.output_path,
            mounts=tuple(mounts),
            sources=tuple((root / s.host, s.container) for s in step.sources),
            setup_cmd=step.setup.cmd if step.setup else None,
            setup_network=bool(step.setup and step.setup.allow_network),
            network=step.allow_network,
            setup_lock=setup_lock if step.setup else None,
            timeout_sec=step.timeout_sec,
            user=step.user,
            read_only_rootfs=step.read_only_rootfs,
            cap_drop=step.cap_drop,
            runtime=step.runtime,
            cpus=resources.cpus if resources else None,
            memory=resources.memory if resources else None,
            pids=resources.pids if resources else None,
            secrets=tuple(self._read_secrets(step)),
            labels={
                "pipex.store": str(self.store.root),
                "pipex.workspace": self.workspace,
                "pipex.step": step.id,
                "pipex.run": job.fingerprint,
                "pipex.owner": owner_token(),  # a container whose owner is gone is a leftover
            },
            stdout_path=logs / "stdout.log",
            stderr_path=logs / "stderr.log",
            on_log=on_log,
            # Secrets live in this build's staging dir: a kill -9 leaves them only
            # until the next pipex command opens the store (it clears dead staging first).
            scratch_dir=output.parent,
        )

    def _read_secrets(self, step: Step) -> Iterator[Any]:
        from pipex.executor.base import SecretFile

        for secret in step.secrets:
            if secret.env is not None:
                value = os.environ.get(secret.env)
                if value is None:
                    msg = f"step '{step.id}': secret '{secret.name}' needs env var {secret.env}, which is not set"
                    raise PipexError(msg)
                yield SecretFile(secret.name, value.encode())
            elif secret.file is not None:
                path = Path(secret.file).expanduser()
                if not path.is_absolute():
                    path = self.pipeline.root / path
                try:
                    yield SecretFile(secret.name, path.read_bytes())
                except OSError as error:
                    msg = f"step '{step.id}': secret '{secret.name}': cannot read {path}: {error.strerror}"
                    raise PipexError(msg) from None


def _failure_reason(result: Any) -> str:
    if result.message:
        return str(result.message)
    return f"exit code {result.exit_code}"


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
