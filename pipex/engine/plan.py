"""The planner: targets -> steps in topological order, each cached, run (and why), pending or skipped.

Like ninja's Plan, this module decides *what* is dirty and why and never runs
anything; ``pipex plan`` and ``build --dry-run`` print a ``Plan``, the runner
executes it. A step is decided in topological order:

1. its ``if:`` condition is false -> SKIPPED;
2. a required input is SKIPPED -> SKIPPED (``optional`` inputs do not block);
3. an input will RUN or is PENDING -> PENDING: its fingerprint needs that
   input's output tree, known only after it ran (the runner then calls
   ``Planner.decide`` -- the one place fingerprints are computed);
4. otherwise the fingerprint is computed; a run with that id in the store ->
   CACHED (from any workspace: the store is shared), else RUN, with reasons
   found by diffing the document against the one recorded by the
   workspace's current run of the step.

Image rule
----------
The fingerprint holds the resolved image *id*, so re-tagging ``latest``
rebuilds. Ids are found without Docker where that is safe, else in ONE batch:

- the workspace's previous run of the step recorded ``image_ref`` and
  ``image_id``; if ``image_ref`` equals the step's image and the reference is
  pinned by digest (``@sha256:``), its recorded id is reused: a digest cannot
  move;
- with ``offline=True`` (``--offline``) recorded ids are reused for tags too,
  each step trusting its own last run (a step never built here -> RUN
  "image X not resolved: --offline ...");
- every other reference (tags, and images never built in this workspace) is
  resolved by ONE ``image_resolver`` call for all of them; the default
  resolver is one read-only ``GET /images/json`` on the Docker socket
  (``pipex.executor.image_ids``), so a plan never imports docker-py;
- a reference not present locally -> RUN "image X not present locally" (the
  runner pulls it, then decides the step);
- if the daemon does not answer, recorded ids are used with a warning, and
  steps without one -> RUN "image X not resolved: ...".

So a no-op plan contacts Docker at most once, and not at all when every
image is pinned by digest or ``--offline`` is given.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pipex.errors import PipexError, StoreCorruptError
from pipex.engine.fingerprint import (
    HostHasher,
    diff_files,
    fingerprint_of,
    host_paths,
    step_document,
)
from pipex.engine.graph import resolve_names, select, topo_order
from pipex.spec.model import Pipeline, Step

__all__ = [
    "StepStatus",
    "StepPlan",
    "Plan",
    "Planner",
    "ImageResolver",
    "make_plan",
    "resolve_step",
    "explain",
    "is_pinned",
]

#: ``refs -> {ref: image id, or None when the image is not present locally}``.
ImageResolver = Callable[[list[str]], Mapping[str, "str | None"]]

# How many changed files a reason names before "and N more".
_MAX_FILES_NAMED = 3


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


def is_pinned(ref: str) -> bool:
    """True when an image reference is pinned by digest (``name@sha256:...``) or is an id."""
    return "@sha256:" in ref or ref.startswith("sha256:")


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


def explain(previous: Mapping[str, Any] | None, document: Mapping[str, Any], *, host_hasher: HostHasher | None = None) -> list[str]:
    """Return why ``document`` differs from the ``previous`` one, most telling first.

    ``host_hasher`` provides file listings of earlier host trees so that changed
    files can be named; without one (or when the listing is gone) the reason
    names the mount instead.
    """
    if previous is None:
        return ["never built"]
    if previous.get("format") != document.get("format"):
        return ["fingerprint format changed"]
    reasons: list[str] = []
    ref = document.get("imageRef")
    if previous.get("image") != document.get("image"):
        if previous.get("imageRef") == ref:
            reasons.append(f"image {ref} now points to another image")
        else:
            reasons.append(f"image changed: {previous.get('imageRef')} -> {ref}")
    if previous.get("cmd") != document.get("cmd"):
        reasons.append("cmd changed")
    if previous.get("setup") != document.get("setup"):
        reasons.append("setup changed")
    old_env, new_env = previous.get("env") or {}, document.get("env") or {}
    for name in sorted(set(old_env) | set(new_env)):
        if name not in old_env:
            reasons.append(f"env {name} added")
        elif name not in new_env:
            reasons.append(f"env {name} removed")
        elif old_env[name] != new_env[name]:
            reasons.append(f"env {name} changed")
    if previous.get("outputPath") != document.get("outputPath"):
        reasons.append("output path changed")
    if previous.get("network") != document.get("network"):
        reasons.append("network changed")
    old_inputs, new_inputs = previous.get("inputs") or {}, document.get("inputs") or {}
    for name in sorted(set(old_inputs) | set(new_inputs), key=lambda n: (n not in new_inputs, n)):
        if name not in old_inputs:
            reasons.append(f"input '{name}' added")
        elif name not in new_inputs:
            reasons.append(f"input '{name}' removed")
        elif old_inputs[name].get("tree") != new_inputs[name].get("tree"):
            reasons.append(f"input '{name}' changed")
        elif old_inputs[name] != new_inputs[name]:
            reasons.append(f"input '{name}' options changed")
    reasons.extend(_explain_host(previous, document, host_hasher))
    if previous.get("caches") != document.get("caches"):
        reasons.append("caches changed")
    for key, label in (("user", "user"), ("runtime", "runtime"), ("readOnlyRootfs", "readOnlyRootfs"), ("capDrop", "capDrop")):
        if previous.get(key) != document.get(key):
            reasons.append(f"{label} changed")
    return reasons or ["fingerprint changed"]


def _explain_host(previous: Mapping[str, Any], document: Mapping[str, Any], hasher: HostHasher | None) -> list[str]:
    reasons: list[str] = []
    files: list[str] = []
    unnamed: list[str] = []
    for kind in ("mounts", "sources"):
        old_list = previous.get(kind) or []
        new_list = document.get(kind) or []
        shape = lambda items: [(m.get("host"), m.get("container")) for m in items]  # noqa: E731
        if shape(old_list) != shape(new_list):
            reasons.append(f"{kind} changed")
            continue
        for old, new in zip(old_list, new_list):
            if old.get("tree") == new.get("tree"):
                continue
            before = hasher.manifest(old["tree"]) if hasher and old.get("tree") else None
            after = hasher.manifest(new["tree"]) if hasher and new.get("tree") else None
            if before is None or after is None:
                label = f"{kind[:-1]} '{new.get('host')}' changed"
                if label not in unnamed:
                    unnamed.append(label)
                continue
            for path in diff_files(before, after):
                if path not in files:
                    files.append(path)
    named = [f"file {path} changed" for path in files[:_MAX_FILES_NAMED]]
    if len(files) > _MAX_FILES_NAMED:
        named.append(f"and {len(files) - _MAX_FILES_NAMED} more files changed")
    return reasons + named + unnamed


class Planner:
    """Holds what deciding steps needs -- store, workspace, images, host hasher -- for plan and runner alike.

    ``plan()`` decides every selected step; the runner calls ``decide()`` for a
    PENDING step once its inputs' trees are known, so both use one code path.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: Any,
        *,
        workspace: str | None = None,
        force: bool | frozenset[str] | Iterable[str] = False,
        condition_env: Mapping[str, str] | None = None,
        image_resolver: ImageResolver | None = None,
        offline: bool = False,
        host_hasher: HostHasher | None = None,
    ) -> None:
        """See ``make_plan`` for the arguments; ``workspace`` defaults to the pipeline id."""
        self.pipeline = pipeline
        self.store = store
        self.workspace = workspace or pipeline.id
        self.offline = offline
        self.condition_env: Mapping[str, str] = os.environ if condition_env is None else condition_env
        self.image_resolver = image_resolver
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
        self._metas: dict[str, dict[str, Any] | None] = {}
        self._conditions: dict[str, Any] = {}
        # ref -> resolved id; filled by the one batch call in plan().
        self.image_ids: dict[str, str | None] = {}
        self._image_notes: dict[str, str] = {}
        self._step_images: dict[str, str] = {}
        self._step_notes: dict[str, str] = {}
        self.warnings: list[str] = []

    # -- store access (read only) ------------------------------------------

    def _meta(self, run_id: str | None) -> dict[str, Any] | None:
        """The meta of a sound run (what ``store.has_run`` checks), read once per run id; else None."""
        if not run_id:
            return None
        if run_id not in self._metas:
            meta: dict[str, Any] | None
            try:
                meta = self.store.read_run(run_id).meta
            except (PipexError, OSError, KeyError, ValueError):
                meta = None
            # NOTE: the same test as Store.has_run, without parsing meta.json twice.
            tree = meta.get("output_tree") if meta else None
            has_tree = getattr(self.store, "has_tree", None)
            if tree and has_tree is not None and not has_tree(tree):
                meta = None
            self._metas[run_id] = meta
        return self._metas[run_id]

    def _previous_run(self, step_id: str) -> str | None:
        try:
            return self.store.get_ref(self.workspace, step_id)
        except (PipexError, OSError):
            return None

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

    def _recorded_image(self, step: Step) -> str | None:
        meta = self._meta(self._previous_run(step.id))
        if meta and meta.get("image_ref") == step.image and meta.get("image_id"):
            return str(meta["image_id"])
        return None

    def image_of(self, step: Step) -> str | None:
        """The image id the image rule found for ``step`` (``None``: unknown, see ``image_note``)."""
        return self._step_images.get(step.id) or self.image_ids.get(step.image)

    def image_note(self, step: Step) -> str:
        """Why ``step`` has no image id."""
        return self._step_notes.get(step.id) or self._image_notes.get(step.image) or f"image {step.image} not resolved"

    def resolve_images(self, steps: Iterable[Step]) -> None:
        """Find image ids for ``steps`` by the image rule (module docstring): at most one resolver call.

        Recorded ids are per step (each step trusts what its own last run used);
        resolved ids are per reference.
        """
        steps = list(steps)
        wanted: dict[str, list[Step]] = {}
        for step in steps:
            ref = step.image
            if step.id in self._step_images or ref in self.image_ids or ref in self._image_notes:
                continue
            if self.offline or is_pinned(ref):
                # Only here is the previous run read: a tag online is re-resolved anyway.
                recorded = self._recorded_image(step)
                if recorded:
                    self._step_images[step.id] = recorded
                    continue
                if self.offline:
                    self._step_notes[step.id] = f"image {ref} not resolved: --offline and no run recorded its id"
                    continue
            wanted.setdefault(ref, []).append(step)
        if not wanted:
            return
        resolver = self.image_resolver
        if resolver is None:
            from pipex.executor.image_ids import default_image_resolver

            resolver = default_image_resolver
        try:
            found = dict(resolver(list(wanted)))
        except PipexError as error:
            warning = f"{error}; using image ids recorded by previous runs"
            if warning not in self.warnings:  # resolution may be asked again for pending steps
                self.warnings.append(warning)
            for ref, waiting in wanted.items():
                for step in waiting:
                    recorded = self._recorded_image(step)
                    if recorded:
                        self._step_images[step.id] = recorded
                    else:
                        self._step_notes[step.id] = f"image {ref} not resolved: Docker unreachable"
            return
        for ref in wanted:
            image_id = found.get(ref)
            if image_id:
                self.image_ids[ref] = image_id
            else:
                self._image_notes[ref] = f"image {ref} not present locally"

    # -- what the runner calls ---------------------------------------------------

    def resolve_step(
        self, step: Step, *, input_trees: Mapping[str, str | None], image_id: str
    ) -> tuple[str, dict[str, Any]]:
        """Return ``(fingerprint, document)`` of ``step`` (see the module-level ``resolve_step``)."""
        return resolve_step(step, input_trees=input_trees, image_id=image_id, host_hasher=self.host_hasher)

    def recheck_host_paths(self, step: Step, document: Mapping[str, Any]) -> list[str]:
        """Re-hash the step's host paths after it ran; return the files that changed since ``document``.

        A non-empty answer means the output must not be recorded under the
        document's fingerprint. A host path that vanished is reported as changed.
        """
        changed: list[str] = []
        for entry in (*(document.get("mounts") or ()), *(document.get("sources") or ())):
            host = entry["host"]
            try:
                current = self.host_hasher.hash_tree(host)
            except PipexError:
                changed.append(host)
                continue
            if current.tree_hash == entry["tree"]:
                continue
            before = self.host_hasher.manifest(entry["tree"])
            for path in diff_files(before, current.files) if before is not None else [host]:
                if path not in changed:
                    changed.append(path)
        self.host_hasher.save()
        return changed

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
        image rule found; the runner passes it after pulling a missing image.
        """
        step = self._steps[step_id]
        if image_id is None:
            self.resolve_images([step])
            image_id = self.image_of(step)
        if image_id is None:
            return StepPlan(step_id, StepStatus.RUN, (self.image_note(step),))
        fingerprint, document = resolve_step(
            step, input_trees=input_trees, image_id=image_id, host_hasher=self.host_hasher
        )
        forced = step_id in self._forced
        meta = None if forced else self._meta(fingerprint)
        if meta is not None:
            finished = meta.get("finished_at")
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
                meta.get("output_tree"),
            )
        previous_id = self._previous_run(step_id)
        previous_meta = self._meta(previous_id)
        if forced:
            reasons = ["forced"]
        elif previous_id and previous_meta is None:
            reasons = ["previous run was removed"]
        elif previous_id == fingerprint:
            reasons = ["previous run was removed"]
        else:
            previous_doc = previous_meta.get("fingerprint_doc") if previous_meta else None
            reasons = self._failed_last(step_id, previous_meta, fingerprint, document) or explain(
                previous_doc, document, host_hasher=self.host_hasher
            )
        return StepPlan(step_id, StepStatus.RUN, tuple(reasons), fingerprint, None, None, image_id, document)

    def _failed_last(
        self, step_id: str, succeeded: Mapping[str, Any] | None, fingerprint: str, document: Mapping[str, Any]
    ) -> list[str]:
        """``last run failed (exit N)`` when the step's latest run failed, plus what changed since; else []."""
        try:
            failed_id = self.store.get_ref(self.workspace, step_id, kind="failed")
        except (PipexError, OSError):
            return []
        failed = self._failed_meta(failed_id)
        if failed is None:
            return []
        if succeeded is not None and float(succeeded.get("finished_at") or 0) >= float(failed.get("finished_at") or 0):
            return []  # a success came after it: explain against that
        if failed.get("timed_out"):
            why = "timed out"
        elif failed.get("exit_code") is not None:
            why = f"exit {failed['exit_code']}"
        else:
            why = str(failed.get("message") or "failed").split(";")[0]
        reasons = [f"last run failed ({why})"]
        if failed.get("fingerprint") != fingerprint and isinstance(failed.get("fingerprint_doc"), Mapping):
            reasons += explain(failed["fingerprint_doc"], document, host_hasher=self.host_hasher)
        return reasons

    def _failed_meta(self, run_id: str | None) -> Mapping[str, Any] | None:
        if run_id is None:
            return None
        try:
            return self.store.read_run(run_id).meta  # type: ignore[no-any-return]
        except (PipexError, OSError):
            return None

    def plan(self, targets: Iterable[str] = ()) -> Plan:
        """Decide every step the targets need (default: all leaves), in topological order."""
        resolved, selected = select(self.pipeline, targets)
        order = topo_order(self.pipeline, selected)
        live = [self._steps[i] for i in order if self.condition_holds(self._steps[i])]
        live_ids = {step.id for step in live}
        self.resolve_images(live)
        decided: dict[str, StepPlan] = {}
        for step_id in order:
            step = self._steps[step_id]
            decided[step_id] = self._decide_in_plan(step, step_id in live_ids, decided)
        self.host_hasher.save()
        return Plan(self.workspace, resolved, tuple(decided[i] for i in order), tuple(self.warnings))

    def _decide_in_plan(self, step: Step, condition_holds: bool, decided: Mapping[str, StepPlan]) -> StepPlan:
        image_id = self.image_of(step)
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
    store: Any,
    *,
    workspace: str,
    targets: Iterable[str] = (),
    force: bool | frozenset[str] = False,
    condition_env: Mapping[str, str] | None = None,
    image_resolver: ImageResolver | None = None,
    offline: bool = False,
    host_hasher: HostHasher | None = None,
) -> Plan:
    """Return the plan for ``targets`` (ids or globs; default all leaves) in ``workspace``.

    ``force``: True for every step, or a set of step ids/globs whose cache is
    ignored. ``condition_env`` (default ``os.environ``) is what ``if:`` sees.
    ``image_resolver`` resolves image refs in one call (default: the Docker
    socket, see the module docstring). Reads the store, never writes it; only
    the host stat cache may be updated.
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
    )
    return planner.plan(targets)
