"""The build loop: find ready steps, decide cached or run, hand jobs to worker threads, emit events.

Like ninja's Builder: the plan says what is dirty; this loop starts a step as
soon as its own inputs are done (no level barriers), bounded by ``concurrency``
worker threads, each of which drives one job through ``JobRunner``.
Pending steps are decided when their inputs finish: their fingerprints use the
inputs' output *tree ids*, so an input that re-ran with identical output leaves
them cached (early cutoff).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from pipex.engine.job import JobRunner, StepJob
from pipex.engine.plan import Plan, Planner, StepPlan, StepStatus
from pipex.engine.results import BuildOptions, BuildResult, InputUnavailable, StepInterrupted, StepOutcome, StepResult
from pipex.engine.session import BuildSession
from pipex.errors import DockerUnavailableError, ImageError, InterruptedBuild, PipexError
from pipex.events import Event, EventKind
from pipex.spec.model import Pipeline, Step

__all__ = ["Scheduler"]

_ENGINE_GONE = "the Docker engine does not answer"


class Scheduler:
    """Build every step of ``plan`` in ``session``; ``planner`` decides pending steps, ``jobs`` runs them."""

    def __init__(
        self, pipeline: Pipeline, plan: Plan, *, planner: Planner, session: BuildSession, jobs: JobRunner, options: BuildOptions
    ) -> None:
        """Nothing happens until ``run``."""
        self.pipeline = pipeline
        self.plan = plan
        self.planner = planner
        self.session = session
        self.jobs = jobs
        self.options = options
        self._planned = {sp.step_id: sp for sp in plan.steps}
        self._rerun: dict[str, str] = {}  # producers whose remote run lost an object -> why they run here

    def run(self) -> BuildResult:
        """Build every step of the plan; return when all are decided or the build is cancelled."""
        session = self.session
        cancel = session.cancel
        started = time.monotonic()
        order = [sp.step_id for sp in self.plan.steps]
        plans = {sp.step_id: sp for sp in self.plan.steps}
        results: dict[str, StepResult] = {}
        waiting = list(order)
        ready: list[StepJob] = []
        running: dict[Future[StepResult], str] = {}
        stopped_by: str | None = None
        session.sink(Event(EventKind.PIPELINE_START, data={"workspace": session.workspace, "steps": order}))
        with ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="pipex-step") as pool:
            while waiting or ready or running:
                if not cancel.is_set() and stopped_by is None:
                    for step_id in list(waiting):
                        step = self.pipeline.step(step_id)
                        if all(i.step in results or i.step not in plans for i in step.inputs):
                            waiting.remove(step_id)
                            decided = self._decide(step, plans[step_id], results)
                            if isinstance(decided, StepResult):
                                self._finish(decided, results)
                                if self._stops_the_build(decided) or session.fatal is not None:
                                    stopped_by = step_id
                                    break
                            else:
                                ready.append(decided)
                    while ready and len(running) < self.options.concurrency and stopped_by is None:
                        job = ready.pop(0)
                        session.sink(Event(EventKind.STEP_STARTING, job.step.id, {"reason": job.reason, "fingerprint": job.fingerprint}))
                        running[pool.submit(self.jobs.execute, job)] = job.step.id
                if cancel.is_set() or stopped_by is not None:
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
                    try:
                        result = self._collect(future, step_id)
                    except InputUnavailable as lost:
                        failed = self._run_producer_here(lost, step_id, results, waiting, order)
                        if failed is None:
                            continue
                        result = failed
                    self._finish(result, results)
                    if self._stops_the_build(result) or (session.fatal is not None and stopped_by is None):
                        stopped_by = step_id
        interrupted = cancel.is_set()
        for step_id in waiting:
            if step_id not in results:
                reason = "build interrupted" if interrupted else _ENGINE_GONE if session.fatal else f"build stopped after '{stopped_by}' failed"
                self._finish(StepResult(step_id, StepOutcome.SKIPPED, reason=reason), results)
        build = BuildResult(session.workspace, tuple(results[s] for s in order if s in results), interrupted)
        summary: dict[str, object] = {
            "workspace": session.workspace,
            "ran": build.count(StepOutcome.SUCCEEDED),
            "cached": build.count(StepOutcome.CACHED),
            "skipped": build.count(StepOutcome.SKIPPED),
            "failed": build.count(StepOutcome.FAILED),
            "durationMs": int((time.monotonic() - started) * 1000),
        }
        if interrupted:
            summary["interrupted"] = True
        if session.remote is not None and session.remote.used:
            summary["remote"] = session.remote.requests()
        session.remove_killed_builds_containers()
        if session.fatal is not None:
            summary["reason"] = str(session.fatal).splitlines()[0]
            session.sink(Event(EventKind.PIPELINE_FAILED, data=summary))
            raise session.fatal
        session.sink(Event(EventKind.PIPELINE_FINISHED if build.ok else EventKind.PIPELINE_FAILED, data=summary))
        return build

    def _run_producer_here(
        self, lost: InputUnavailable, consumer: str, results: dict[str, StepResult], waiting: list[str], order: list[str]
    ) -> StepResult | None:
        """An input's remote run lost an object: forget it, queue its producer and the consumer again.

        None when both are queued; a failure of the consumer when that run
        was forgotten once already (the producer's own run is damaged).
        """
        if lost.producer in self._rerun:
            step = self.pipeline.step(consumer)
            return self.jobs.fail_outside_command(step, PipexError(f"input '{lost.producer}': {lost.reason}"))
        self._rerun[lost.producer] = lost.reason
        self.jobs.forget_run(lost.run_id)
        self.session.warn(f"step '{lost.producer}': {lost.reason} on the remote; it runs here")
        results.pop(lost.producer, None)
        for step_id in (lost.producer, consumer):
            if step_id not in waiting:
                waiting.append(step_id)
        waiting.sort(key=order.index)
        return None

    def _stops_the_build(self, result: StepResult) -> bool:
        """make's rule: the first failure stops the build unless -k (allowed failures never do)."""
        return (
            result.outcome is StepOutcome.FAILED
            and not result.allow_failure
            and not self.options.keep_going
            and not self.session.cancel.is_set()
        )

    def _collect(self, future: Future[StepResult], step_id: str) -> StepResult:
        try:
            return future.result()
        except StepInterrupted:
            return StepResult(step_id, StepOutcome.SKIPPED, reason="build interrupted")
        except PipexError as error:
            if error is self.session.fatal:
                return StepResult(step_id, StepOutcome.SKIPPED, reason=_ENGINE_GONE)
            # An error outside the step's command (refused output, full disk)
            # is still a step failure: say which step and why.
            return self.jobs.fail_outside_command(self.pipeline.step(step_id), error)

    def _finish(self, result: StepResult, results: dict[str, StepResult]) -> None:
        results[result.step_id] = result
        if result.outcome is StepOutcome.SKIPPED:
            self.session.sink(Event(EventKind.STEP_SKIPPED, result.step_id, {"reason": result.reason}))
        elif result.outcome is StepOutcome.CACHED:
            self.session.sink(
                Event(EventKind.STEP_CACHED, result.step_id, {"runId": result.run_id, "tree": result.tree_id, "source": result.source})
            )

    def _decide(self, step: Step, step_plan: StepPlan, results: Mapping[str, StepResult]) -> StepResult | StepJob:
        """Skip, reuse a run, or make a job; cheap enough for the main thread.

        Steps the plan already decided as cached are taken as they are; the
        others (run, pending) are decided again by the planner now that their
        inputs' output trees are known, so early cutoff applies.
        """
        if step_plan.status is StepStatus.SKIPPED:
            reason = "; ".join(step_plan.reasons) if step_plan.reasons else "skipped"
            return StepResult(step.id, StepOutcome.SKIPPED, reason=reason)
        input_trees: dict[str, str | None] = {}
        for ref in step.inputs:
            upstream = results.get(ref.step)
            if upstream is not None and upstream.tree_id is not None and (
                upstream.outcome is not StepOutcome.FAILED or upstream.allow_failure
            ):
                input_trees[ref.step] = upstream.tree_id
            elif ref.optional:
                input_trees[ref.step] = None
            else:
                state = upstream.outcome.value if upstream else "not built"
                return StepResult(step.id, StepOutcome.SKIPPED, reason=f"input '{ref.step}' {state}")
        if step_plan.status is StepStatus.CACHED and self._inputs_as_planned(step, input_trees):
            return self._reuse(step, step_plan, input_trees)
        try:
            image_id = self.planner.images.image_of(step) or self.session.image_id(step.image)
        except (StepInterrupted, InterruptedBuild):
            return StepResult(step.id, StepOutcome.SKIPPED, reason="build interrupted")
        except DockerUnavailableError:
            if self.session.fatal is None:
                raise
            return StepResult(step.id, StepOutcome.SKIPPED, reason=_ENGINE_GONE)
        except ImageError as error:
            # A missing or unpullable image fails this step only: -k goes on.
            # (An engine that does not answer fails the whole build: exit 2.)
            return self.jobs.fail_outside_command(step, error)
        decided = self.planner.decide(step.id, input_trees=input_trees, image_id=image_id)
        if decided.status is StepStatus.CACHED:
            return self._reuse(step, decided, input_trees)
        reason = self._rerun.get(step.id) or "; ".join(decided.reasons) or "never built"
        return StepJob.from_plan(step, decided, input_trees, reason)

    def _inputs_as_planned(self, step: Step, input_trees: Mapping[str, str | None]) -> bool:
        """True if every input has the tree the plan assumed (a producer whose remote run was unusable ran again)."""
        for ref in step.inputs:
            planned = self._planned.get(ref.step)
            if planned is not None and planned.status is StepStatus.CACHED and planned.output_tree != input_trees.get(ref.step):
                return False
        return True

    def _reuse(self, step: Step, decided: StepPlan, input_trees: Mapping[str, str | None]) -> StepResult | StepJob:
        """A cached step's result; a job when its remote run proved unusable (damaged, unreachable)."""
        assert decided.run_id is not None
        rerun = self._rerun.get(step.id)
        if rerun is None:
            reused = self.jobs.reuse(step, decided.run_id, decided.output_tree, remote=decided.source == "remote")
            if reused is not None:
                return reused
        return StepJob.from_plan(step, decided, input_trees, rerun or "the remote cache's run could not be used")
