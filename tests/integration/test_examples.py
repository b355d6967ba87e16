"""The shipped examples build end to end on the offline images, then are fully cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _build(example: str, store: Path, *extra: str, env: dict[str, str] | None = None) -> list[dict]:
    environ = dict(os.environ, PIPEX_STORE=str(store), NO_COLOR="1", **(env or {}))
    environ.pop("CI", None)
    environ.pop("NOTIFY", None)
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "pipex", "build", "-f", str(EXAMPLES / example), "--json", *extra],
        env=environ, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _by_step(events: list[dict], kind: str) -> set[str]:
    return {e["step"] for e in events if e["event"] == kind}


def test_text_processing_example(tmp_path: Path) -> None:
    store = tmp_path / "store"
    events = _build("text-processing", store)
    assert _by_step(events, "STEP_FINISHED") == {"generate", "stats", "filter", "report"}
    assert _by_step(events, "STEP_SKIPPED") == {"notify", "audit"}
    again = _build("text-processing", store, env={"NOTIFY": "true"})
    assert _by_step(again, "STEP_CACHED") == {"generate", "stats", "filter", "report"}
    assert _by_step(again, "STEP_FINISHED") == {"notify"}


def test_multi_language_example_installs_requirements_and_feeds_node(tmp_path: Path) -> None:
    store = tmp_path / "store"
    events = _build("multi-language", store, "--verbose")
    assert _by_step(events, "STEP_FINISHED") == {"analyse", "render"}
    logs = [e["line"] for e in events if e["event"] == "STEP_LOG" and e["step"] == "render"]
    assert "words: 180" in logs
    assert _by_step(_build("multi-language", store), "STEP_CACHED") == {"analyse", "render"}
