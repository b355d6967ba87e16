"""Concurrency: four builds on one store (two on one workspace, two on others) while gc loops."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import BUSYBOX, iterations, run_pipex, staging_entries, start_pipex, verify_store, write_project

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PIPELINE = f"""\
id: conc
steps:
  - id: base
    image: {BUSYBOX}
    cmd: sleep 1.5; echo "base $ROUND" > /output/base; head -c 300000 /dev/urandom > /output/noise
  - id: left
    image: {BUSYBOX}
    inputs: [{{step: base}}]
    cmd: sleep 0.5; cat /input/base/base > /output/left; echo left >> /output/left
  - id: right
    image: {BUSYBOX}
    inputs: [{{step: base}}]
    cmd: mkdir /output/d; cat /input/base/base > /output/d/right
  - id: join
    image: {BUSYBOX}
    inputs: [{{step: left}}, {{step: right}}]
    cmd: cat /input/left/left /input/right/d/right > /output/join
"""
STEPS = ("base", "left", "right", "join")
WORKSPACES = ("same", "same", "other1", "other2")


def _gc_loop(store: Path, stop: threading.Event, reports: list[str]) -> None:
    """Run ``pipex gc`` back to back until ``stop``; keep each outcome."""
    while not stop.is_set():
        process = run_pipex("gc", "--json", "--store", str(store), timeout=120)
        reports.append(f"{process.proc.returncode}: {process.stdout} {process.stderr}".strip())


def _expected_join(round_id: str) -> str:
    """What the join step's output must hold in round ``round_id``."""
    return f"base {round_id}\nleft\nbase {round_id}\n"


def test_four_builds_and_looping_gc_all_succeed_and_every_ref_verifies(tmp_path: Path, store: Path) -> None:
    root = write_project(tmp_path / "project", PIPELINE)
    rounds = iterations("concurrency_rounds", 2)
    for round_no in range(rounds):
        round_id = f"{round_no}-{time.time_ns()}"
        env_file = root / "round.env"
        env_file.write_text(f"ROUND={round_id}\n")
        stop = threading.Event()
        gc_reports: list[str] = []
        gc_thread = threading.Thread(target=_gc_loop, args=(store, stop, gc_reports), daemon=True)
        if round_no:  # the first round also covers a store that gc has never seen
            gc_thread.start()
        builds = [
            start_pipex(
                "build", "-f", str(root), "--store", str(store), "--env-file", str(env_file), "--json", "-w", ws, "-j", "2"
            )
            for ws in WORKSPACES
        ]
        if not round_no:
            gc_thread.start()
        codes = [b.wait(timeout=240) for b in builds]
        time.sleep(0.5)  # let gc run once more against the finished refs
        stop.set()
        gc_thread.join(timeout=120)
        details = [f"{ws}: rc={b.proc.returncode} {b.stderr} {b.stdout}" for ws, b in zip(WORKSPACES, builds)]
        assert codes == [0, 0, 0, 0], details
        assert all("Traceback" not in b.stderr for b in builds), details
        assert gc_reports and all(r.startswith("0:") for r in gc_reports), gc_reports
        # Every fingerprint ran exactly once across the four processes.
        finished = Counter(e["step"] for b in builds for e in b.events.of("STEP_FINISHED"))
        assert finished == Counter(STEPS), (finished, details)
        for build in builds:
            assert build.events.steps("STEP_FINISHED") | build.events.steps("STEP_CACHED") == set(STEPS)
        # The two builds of the shared workspace did not overlap, and the later one said why it waited
        # (for the workspace, or for a gc queued before it).
        first, second = sorted(builds[:2], key=lambda b: b.events.of("PIPELINE_START")[0]["time"])
        assert second.events.of("PIPELINE_START")[0]["time"] >= first.events.of("PIPELINE_FINISHED")[0]["time"], details
        said = [e.get("message", "") for e in second.events.of("WARNING")]
        assert any("another build of workspace 'same'" in m or "pipex gc" in m for m in said), details
        # Each workspace's refs point at the same sound runs, whose outputs gc kept.
        from pipex.store import Store

        opened = Store.open(store)
        refs = {ws: opened.workspace_refs(ws) for ws in set(WORKSPACES)}
        assert all(set(r) == set(STEPS) for r in refs.values()), refs
        assert len({json.dumps(r, sort_keys=True) for r in refs.values()}) == 1, refs
        join_tree = opened.read_run(refs["same"]["join"]).meta.output_tree
        assert (opened.checkout(join_tree) / "join").read_text() == _expected_join(round_id)
        report = verify_store(store)
        assert report["refs"] >= len(STEPS) * 3
        assert staging_entries(store) == []
