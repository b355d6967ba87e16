"""Test helpers for the planner: tiny pipelines and a real store seeded with run records (no Docker)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pipex.engine.hosts import HostHasher
from pipex.engine.plan import Plan, StepPlan, StepStatus, make_plan
from pipex.store import Store
from pipex.spec.model import InputRef, PathMapping, Pipeline, Step
from pipex.store.runs import RunMeta

IMAGE = "python:3.12-slim"
IMAGE_ID = "sha256:" + "1" * 64


def step(step_id: str, *inputs: str, optional: tuple[str, ...] = (), **fields: Any) -> Step:
    """A step with sensible defaults; ``inputs`` are required, ``optional`` ones optional."""
    refs = tuple(InputRef(name) for name in inputs) + tuple(InputRef(name, optional=True) for name in optional)
    fields.setdefault("image", IMAGE)
    fields.setdefault("cmd", ("sh", "-c", f"echo {step_id}"))
    if "mounts" in fields:
        fields["mounts"] = tuple(PathMapping(h, c) for h, c in fields["mounts"])
    if "sources" in fields:
        fields["sources"] = tuple(PathMapping(h, c) for h, c in fields["sources"])
    return Step(id=step_id, inputs=refs, **fields)


def pipeline(root: Path, *steps: Step, pipeline_id: str = "demo") -> Pipeline:
    """A pipeline rooted at ``root``."""
    return Pipeline(id=pipeline_id, root=root, file=root / "pipeline.yaml", steps=tuple(steps))


def open_store(root: Path) -> Store:
    """A real, empty store at ``root``."""
    return Store.open(root)


def tree_of(store: Store, step_id: str, version: int = 0) -> str:
    """The tree id of a small output unique to (step, version), ingested into ``store``."""
    with tempfile.TemporaryDirectory(dir=store.root.parent) as tmp:
        (Path(tmp) / "out.txt").write_text(f"{step_id} v{version}\n")
        return store.ingest(Path(tmp)).tree_id


def record(store: Store, workspace: str, pipe: Pipeline, decided: StepPlan, version: int = 0, *, age: float = 60.0) -> str:
    """Record a RUN step of a plan as if it had run and produced (step, version) output; move the ref."""
    store.record_run(
        decided.fingerprint,
        RunMeta.from_dict({
            "step": decided.step_id,
            "fingerprint": decided.fingerprint,
            "fingerprint_doc": decided.document,
            "output_tree": tree_of(store, decided.step_id, version),
            "finished_at": time.time() - age,
            "image_ref": pipe.step(decided.step_id).image,
            "image_id": decided.image_id,
        }),
        None,
    )
    store.set_ref(workspace, decided.step_id, decided.fingerprint)
    return decided.fingerprint


def resolver(mapping: dict[str, str | None] | None = None, calls: list | None = None):
    """An image resolver (a plain function argument, no Docker) that records its calls."""

    def resolve(refs: list[str]) -> dict[str, str | None]:
        if calls is not None:
            calls.append(list(refs))
        table = mapping if mapping is not None else {IMAGE: IMAGE_ID}
        return {ref: table.get(ref, IMAGE_ID if mapping is None else None) for ref in refs}

    return resolve


def build_all(pipe: Pipeline, store: Store, *, workspace: str = "demo", outputs: dict[str, int] | None = None, **kwargs: Any) -> Plan:
    """Pretend to build: plan, record every RUN step (then re-plan pending ones) until nothing runs."""
    outputs = outputs or {}
    kwargs.setdefault("image_resolver", resolver())
    for _ in range(len(pipe.steps) + 1):
        plan = make_plan(pipe, store, workspace=workspace, **kwargs)
        runs = plan.with_status(StepStatus.RUN)
        if not runs:
            return plan
        for decided in runs:
            record(store, workspace, pipe, decided, outputs.get(decided.step_id, 0))
        kwargs.pop("force", None)
    raise AssertionError("build did not converge")


def hasher(pipe: Pipeline, store_root: Path) -> HostHasher:
    """A hasher with its stat cache in the test store."""
    return HostHasher.for_store(store_root, pipe.root)
