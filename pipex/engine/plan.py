"""The planner: targets -> steps in topological order, each cached, run (and why), pending or skipped.

Like ninja's Plan, this module decides *what* is dirty and why and never runs
anything; ``pipex plan`` and ``build --dry-run`` print a ``Plan``, the scheduler
executes it. A step is decided in topological order:

1. its ``if:`` condition is false -> SKIPPED;
2. a required input is SKIPPED -> SKIPPED (``optional`` inputs do not block);
3. an input will RUN or is PENDING -> PENDING: its fingerprint needs that
   input's output tree, known only after it ran (the scheduler then calls
   ``Planner.decide`` -- the one place fingerprints are computed);
4. otherwise the fingerprint is computed; a run with that id in the store ->
   CACHED (from any workspace: the store is shared), else RUN, with reasons
   found by diffing the document against the one recorded by the
   workspace's current run of the step.

Image ids come from ``pipex.engine.images`` (the image rule); reasons from
``pipex.engine.explain``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from pipex.errors import PipexError, StoreCorruptError
from pipex.engine.fingerprint import fingerprint_of, host_paths, step_document
from pipex.engine.hosts import HostHasher
from pipex.engine.images import ImageResolver, ImageRule
from pipex.engine.recorded import RecordedRuns
from pipex.engine.graph import resolve_names, select, topo_order
from pipex.spec.model import Pipeline, Step
from pipex.store.runs import RunMeta

if TYPE_CHECKING:
    from pipex.remote.cache import RemoteCache
    from pipex.store.store import Store

__all__ = ["StepStatus", "StepPlan", "Plan", "Planner", "make_plan", "resolve_step"]


class StepStatus(Enum):
    """What the plan says about a step."""

    CACHED = "cached"
    RUN = "run"
    PENDING = "pending"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepPlan:
    """The decision for one step.

    ``fingerprint``/``document`` are known for CACHED and for RUN when the image
    id is known; ``run_id`` and ``age_sec`` for CACHED; ``output_tree`` is the
    cached run's output tree id (what dependants mount).
    """

    step_id: str
    status: StepStatus
    reasons: tuple[str, ...] = ()
    fingerprint: str | None = None
    run_id: str | None = None
    age_sec: float | None = None
    image_id: str | None = None
    document: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    output_tree: str | None = None
    source: str = "local"  # CACHED: "local" (this store) or "remote" (the remote cache has the run)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``pipex plan --json``."""
        return {
            "step": self.step_id,
            "status": self.status.value,
            "reasons": list(self.reasons),
            "fingerprint": self.fingerprint,
            "run": self.run_id,
            "ageSec": None if self.age_sec is None else round(self.age_sec, 3),
            "imageId": self.image_id,
            "outputTree": self.output_tree,
            "source": self.source if self.status is StepStatus.CACHED else None,
        }


@dataclass(frozen=True)
class Plan:
    """Every selected step, in topological order, with its status and reasons."""

    workspace: str
    targets: tuple[str, ...]
    steps: tuple[StepPlan, ...]
    warnings: tuple[str, ...] = ()

    def step(self, step_id: str) -> StepPlan:
        """Return the decision for one step (KeyError if it is not in the plan)."""
        for decided in self.steps:
            if decided.step_id == step_id:
                return decided
        raise KeyError(step_id)

    def with_status(self, status: StepStatus) -> tuple[StepPlan, ...]:
        """Return the steps that have ``status``, in plan order."""
        return tuple(s for s in self.steps if s.status is status)

    @property
    def up_to_date(self) -> bool:
        """True when nothing would run."""
        return all(s.status in (StepStatus.CACHED, StepStatus.SKIPPED) for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``pipex plan --json``."""
        return {
            "workspace": self.workspace,
            "targets": list(self.targets),
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
        }


def resolve_step(
    step: Step,
    *,
    input_trees: Mapping[str, str | None],
    image_id: str,
    host_hasher: HostHasher,
) -> tuple[str, dict[str, Any]]:
    """Return ``(fingerprint, document)`` of a step: hashes its host paths, builds and hashes the document.

    The runner's ``host_hasher.last`` then holds the trees to ``recheck`` after the run.
    """
    host_trees = {path: host_hasher.hash_tree(path).tree_hash for path in host_paths(step)}
    document = step_document(step, image_id=image_id, input_trees=input_trees, host_trees=host_trees)
    return fingerprint_of(document), document


class Planner:
    """Holds what deciding steps needs -- store, workspace, images, host hasher -- for plan and runner alike.

    ``plan()`` decides every selected step; the scheduler calls ``decide()`` for a
    PENDING step once its inputs' trees are known, so both use one code path.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: Store,
        *,
        workspace: str | None = None,
        force: bool | frozenset[str] | Iterable[str] = False,
        condition_env: Mapping[str, str] | None = None,
        image_resolver: ImageResolver | None = None,
        offline: bool = False,
        host_hasher: HostHasher | None = None,
        remote: RemoteCache | Callable[[], RemoteCache | None] | None = None,
    ) -> None:
        """See ``make_plan`` for the arguments; ``workspace`` defaults to the pipeline id."""
        self.pipeline = pipeline
        self.store = store
        self.workspace = workspace or pipeline.id
        self.condition_env: Mapping[str, str] = os.environ if condition_env is None else condition_env
        if host_hasher is None:
            store_root = getattr(store, "root", None)
            host_hasher = (
                HostHasher.for_store(store_root, pipeline.root) if store_root else HostHasher(pipeline.root, None)
            )
        self.host_hasher = host_hasher
        self._steps = {step.id: step for step in pipeline.steps}
        if force is True or force is False:
            self._forced: frozenset[str] = frozenset(self._steps) if force else frozenset()
        else:
            self._forced = frozenset(resolve_names(pipeline, tuple(force), what="step to force"))
        self._runs = RecordedRuns(store, self.workspace)
        # A callable is called at the first miss: a plan with everything local never imports the remote.
        self._remote = remote
        self._meta = self._runs.meta
        self._previous_run = self._runs.previous_run
        self._conditions: dict[str, Any] = {}
        # NOTE: the image rule gets the run reader, not the planner: a cycle
        # planner -> rule -> planner would keep every document of a 10,000-step
        # plan alive until the final collection at exit (gc is off; 160 ms).
        self.images = ImageRule(self._runs.recorded_image, resolver=image_resolver, offline=offline)

    # -- conditions and images ----------------------------------------------

    def condition_holds(self, step: Step) -> bool:
        """Evaluate the step's ``if:`` over ``condition_env`` (True when it has none)."""
        if not step.condition:
            return True
        parsed = self._conditions.get(step.condition)
        if parsed is None:
            from pipex.spec.condition import parse_condition  # lazy: only pipelines with conditions pay

            parsed = self._conditions[step.condition] = parse_condition(step.condition)
        return bool(parsed.evaluate(self.condition_env))

    @property
    def warnings(self) -> list[str]:
        """What the plan says besides its steps (an unreachable engine)."""
        remote = self._remote
        return self.images.warnings + (remote.warnings if remote is not None and not callable(remote) else [])

    @property
    def remote(self) -> RemoteCache | None:
        """The remote cache misses are looked up in (made now if it was given as a callable)."""
        if callable(self._remote):
            self._remote = self._remote()
        return self._remote

    # -- deciding ----------------------------------------------------------------

    def decide(
        self,
        step_id: str,
        *,
        input_trees: Mapping[str, str | None],
        image_id: str | None = None,
    ) -> StepPlan:
        """Decide a step whose inputs are settled: CACHED if its fingerprint has a run, else RUN and why.

        ``input_trees`` maps each input to its output tree (``None``: an optional
        input that was skipped or failed). ``image_id`` defaults to the one the
        image rule found; the scheduler passes it after pulling a missing image.
        """
        step = self._steps[step_id]
        if image_id is None:
            self.images.resolve([step])
            image_id = self.images.image_of(step)
        if image_id is None:
            return StepPlan(step_id, StepStatus.RUN, (self.images.note(step),))
        fingerprint, document = resolve_step(
            step, input_trees=input_trees, image_id=image_id, host_hasher=self.host_hasher
        )
        forced = step_id in self._forced
        meta = None if forced else self._meta(fingerprint)
        if meta is not None:
            finished = meta.finished_at
            age = max(0.0, time.time() - float(finished)) if finished is not None else None
            return StepPlan(
                step_id,
                StepStatus.CACHED,
                (),
                fingerprint,
                fingerprint,
                age,
                image_id,
                document,
                meta.output_tree,
            )
        remote = None if forced else self.remote
        if remote is not None:
            hit = remote.lookup(fingerprint)
            if hit is not None:
                age = max(0.0, time.time() - hit.pushed_at)
                return StepPlan(
                    step_id, StepStatus.CACHED, (), fingerprint, fingerprint, age, image_id, document,
                    hit.output_tree, "remote",
                )  # fmt: skip
        previous_id = self._previous_run(step_id)
        previous_meta = self._meta(previous_id)
        if forced:
            reasons = ["forced"]
        elif previous_id and previous_meta is None:
            reasons = ["previous run was removed"]
        elif previous_id == fingerprint:
            reasons = ["previous run was removed"]
        else:
            from pipex.engine.explain import explain  # only a step that runs needs a reason

            previous_doc = previous_meta.fingerprint_doc if previous_meta else None
            reasons = self._failed_last(step_id, previous_meta, fingerprint, document) or explain(
                previous_doc, document, host_hasher=self.host_hasher
            )
        return StepPlan(step_id, StepStatus.RUN, tuple(reasons), fingerprint, None, None, image_id, document)

    def _failed_last(
        self, step_id: str, succeeded: RunMeta | None, fingerprint: str, document: Mapping[str, Any]
    ) -> list[str]:
        """``last run failed (exit N)`` when the step's latest run failed, plus what changed since; else []."""
        try:
            failed_id = self.store.get_ref(self.workspace, step_id, kind="failed")
        except (PipexError, OSError):
            return []
        failed = self._failed_meta(failed_id)
        if failed is None:
            return []
        if succeeded is not None and (succeeded.finished_at or 0) >= (failed.finished_at or 0):
            return []  # a success came after it: explain against that
        if failed.timed_out:
            why = "timed out"
        elif failed.exit_code is not None:
            why = f"exit {failed.exit_code}"
        else:
            why = str(failed.message or "failed").split(";")[0]
        reasons = [f"last run failed ({why})"]
        from pipex.engine.explain import explain
        if failed.fingerprint != fingerprint and failed.fingerprint_doc is not None:
            reasons += explain(failed.fingerprint_doc, document, host_hasher=self.host_hasher)
        return reasons

    def _failed_meta(self, run_id: str | None) -> RunMeta | None:
        if run_id is None:
            return None
        try:
            return self.store.read_run(run_id).meta
        except (PipexError, OSError):
            return None

    def plan(self, targets: Iterable[str] = ()) -> Plan:
        """Decide every step the targets need (default: all leaves), in topological order."""
        resolved, selected = select(self.pipeline, targets)
        order = topo_order(self.pipeline, selected)
        live = [self._steps[i] for i in order if self.condition_holds(self._steps[i])]
        live_ids = {step.id for step in live}
        self.images.resolve(live)
        decided: dict[str, StepPlan] = {}
        for step_id in order:
            step = self._steps[step_id]
            decided[step_id] = self._decide_in_plan(step, step_id in live_ids, decided)
        self.host_hasher.save()
        return Plan(self.workspace, resolved, tuple(decided[i] for i in order), tuple(self.warnings))

    def _decide_in_plan(self, step: Step, condition_holds: bool, decided: Mapping[str, StepPlan]) -> StepPlan:
        image_id = self.images.image_of(step)
        if not condition_holds:
            return StepPlan(step.id, StepStatus.SKIPPED, (f"condition false: {step.condition}",))
        blocked = [
            ref.step
            for ref in step.inputs
            if not ref.optional and decided[ref.step].status is StepStatus.SKIPPED
        ]
        if blocked:
            return StepPlan(step.id, StepStatus.SKIPPED, tuple(f"input '{name}' skipped" for name in blocked))
        waiting = [
            ref.step for ref in step.inputs if decided[ref.step].status in (StepStatus.RUN, StepStatus.PENDING)
        ]
        if waiting:
            reasons = tuple(f"input '{name}' will run" for name in waiting)
            return StepPlan(step.id, StepStatus.PENDING, reasons, image_id=image_id)
        input_trees: dict[str, str | None] = {}
        for ref in step.inputs:
            upstream = decided[ref.step]
            if upstream.status is StepStatus.SKIPPED:
                input_trees[ref.step] = None
            elif upstream.output_tree is None:
                msg = f"run {upstream.run_id} of step '{ref.step}' records no output tree"
                raise StoreCorruptError(msg)
            else:
                input_trees[ref.step] = upstream.output_tree
        return self.decide(step.id, input_trees=input_trees, image_id=image_id)


def make_plan(
    pipeline: Pipeline,
    store: Store,
    *,
    workspace: str,
    targets: Iterable[str] = (),
    force: bool | frozenset[str] = False,
    condition_env: Mapping[str, str] | None = None,
    image_resolver: ImageResolver | None = None,
    offline: bool = False,
    host_hasher: HostHasher | None = None,
    remote: RemoteCache | Callable[[], RemoteCache | None] | None = None,
) -> Plan:
    """Return the plan for ``targets`` (ids or globs; default all leaves) in ``workspace``.

    ``force``: True for every step, or a set of step ids/globs whose cache is
    ignored. ``condition_env`` (default ``os.environ``) is what ``if:`` sees.
    ``image_resolver`` resolves image refs in one call (default: the Docker
    socket, see the module docstring). Reads the store, never writes it; only
    the host stat cache may be updated. ``remote``: a remote cache that a
    fingerprint without a local run is looked up in (read, never written).
    """
    planner = Planner(
        pipeline,
        store,
        workspace=workspace,
        force=force,
        condition_env=condition_env,
        image_resolver=image_resolver,
        offline=offline,
        host_hasher=host_hasher,
        remote=remote,
    )
    return planner.plan(targets)
