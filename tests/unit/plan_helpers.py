"""Test helpers for the planner: tiny pipelines and a store seeded with fake run records."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipex.fingerprint import HostHasher
from pipex.plan import Plan, StepStatus, make_plan
from pipex.spec.model import InputRef, PathMapping, Pipeline, Step

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


@dataclass(frozen=True)
class FakeRun:
    """What read_run returns."""

    run_id: str
    path: Path
    meta: dict


class FakeStore:
    """The read side of the store API the planner uses, seeded in memory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[str, dict] = {}
        self.refs: dict[tuple[str, str], str] = {}

    def has_run(self, run_id: str) -> bool:
        return run_id in self.runs

    def read_run(self, run_id: str) -> FakeRun:
        return FakeRun(run_id, self.root / "runs" / run_id, self.runs[run_id])

    def get_ref(self, workspace: str, step_id: str) -> str | None:
        return self.refs.get((workspace, step_id))

    def record(self, workspace: str, step_id: str, fingerprint: str, meta: dict) -> None:
        self.runs[fingerprint] = meta
        self.refs[(workspace, step_id)] = fingerprint


def resolver(mapping: dict[str, str | None] | None = None, calls: list | None = None):
    """An image resolver (a plain function argument, no Docker) that records its calls."""

    def resolve(refs: list[str]) -> dict[str, str | None]:
        if calls is not None:
            calls.append(list(refs))
        table = mapping if mapping is not None else {IMAGE: IMAGE_ID}
        return {ref: table.get(ref, IMAGE_ID if mapping is None else None) for ref in refs}

    return resolve


def tree_of(step_id: str, version: int = 0) -> str:
    """A fake output tree id."""
    return f"tree-{step_id}-{version}"


def build_all(pipe: Pipeline, store: Any, *, workspace: str = "demo", outputs: dict[str, str] | None = None, **kwargs: Any) -> Plan:
    """Pretend to build: plan, record every RUN step (then re-plan pending ones) until nothing runs."""
    outputs = outputs or {}
    kwargs.setdefault("image_resolver", resolver())
    for _ in range(len(pipe.steps) + 1):
        plan = make_plan(pipe, store, workspace=workspace, **kwargs)
        runs = plan.with_status(StepStatus.RUN)
        if not runs:
            return plan
        for decided in runs:
            store.record(
                workspace,
                decided.step_id,
                decided.fingerprint,
                {
                    "fingerprint_doc": decided.document,
                    "output_tree": outputs.get(decided.step_id, tree_of(decided.step_id)),
                    "finished_at": time.time() - 60,
                    "image_ref": pipe.step(decided.step_id).image,
                    "image_id": decided.image_id,
                },
            )
        kwargs.pop("force", None)
    raise AssertionError("build did not converge")


def hasher(pipe: Pipeline, store_root: Path) -> HostHasher:
    """A hasher with its stat cache in the test store."""
    return HostHasher.for_store(store_root, pipe.root)
