"""Crash: ``pipex build`` SIGKILLed at varied moments; the next build recovers and the store stays valid.

Each iteration writes a new ``--env-file`` value so every step has a new
fingerprint, starts a build, and kills it at one of four kinds of moment
(cycled, with a random offset): a random instant, while a step's container
runs, while the output of the many-files step is being ingested (its
container is gone but the step has not finished), and right after a step
finished (between steps). The next build must succeed, re-run nothing that
the killed one finished, leave no container of the killed process, leave
staging empty, and ``pipex verify`` must be clean.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from .conftest import (
    BUSYBOX,
    PipexProcess,
    chown_tree,
    containers,
    iterations,
    remove_containers,
    run_pipex,
    staging_entries,
    start_pipex,
    verify_store,
    write_project,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PIPELINE = f"""\
id: crash
steps:
  - id: first
    image: {BUSYBOX}
    cmd: echo "$ITER" > /output/first
  - id: many
    image: {BUSYBOX}
    inputs: [{{step: first}}]
    cmd: >-
      mkdir -p /output/sub/deeper;
      i=0; while [ $i -lt 1500 ]; do echo "$i $ITER" > /output/sub/f$i; i=$((i+1)); done;
      head -c 4000000 /dev/urandom > /output/sub/deeper/big; echo "$ITER" > /output/f7
  - id: slow
    image: {BUSYBOX}
    inputs: [{{step: many}}]
    cmd: sleep 0.7; cat /input/many/f7 > /output/slow
  - id: side
    image: {BUSYBOX}
    cmd: sleep 0.4; echo "side $ITER" > /output/side
  - id: last
    image: {BUSYBOX}
    inputs: [{{step: slow}}, {{step: side}}]
    cmd: cat /input/slow/slow /input/side/side > /output/last
"""
STEPS = {"first", "many", "slow", "side", "last"}
MOMENTS = ("random", "during-step", "during-ingest", "between-steps")


def _kill_at(process: PipexProcess, store: Path, moment: str, rng: random.Random, step: str | None = None) -> str:
    """Kill ``process`` at ``moment``; return what was actually hit (for the failure message)."""
    events = process.events
    if moment == "random":
        time.sleep(rng.uniform(0.1, 4.0))
    elif moment == "during-step":
        step = step or rng.choice(["many", "slow", "side"])
        events.wait_for(lambda e: e.get("event") == "STEP_STARTING" and e.get("step") == step, timeout=60)
        time.sleep(rng.uniform(0.2, 0.6))
        moment += f":{step}"
    elif moment == "during-ingest":
        events.wait_for(lambda e: e.get("event") == "STEP_STARTING" and e.get("step") == "many", timeout=60)
        seen = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not events.steps("STEP_FINISHED") & {"many"}:
            mine = [c for c in containers(store) if c["Labels"].get("pipex.step") == "many"]
            if mine:
                seen = True
            elif seen:
                break  # the container is gone, the step is not finished: ingest (or record) runs
            time.sleep(0.02)
    else:
        step = rng.choice(["first", "many", "side"])
        events.wait_for(lambda e: e.get("event") == "STEP_FINISHED" and e.get("step") == step, timeout=60)
        moment += f":{step}"
    process.proc.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return moment


def _crash_and_recover(
    root: Path, store: Path, iteration: int, rng: random.Random, user: str | None = None, step: str | None = None
) -> str:
    """One iteration: a build killed at a chosen moment, then the recovering build; checks both."""
    env_file = root / "iter.env"
    env_file.write_text(f"ITER={iteration}-{rng.random()}\n")
    if user is not None:
        chown_tree(root, user)
    args = ("build", "-f", str(root), "--env-file", str(env_file), "--store", str(store), "--json", "-j", "2")
    moment = "during-step" if step else MOMENTS[iteration % len(MOMENTS)]
    killed = start_pipex(*args, user=user)
    hit = _kill_at(killed, store, moment, rng, step)
    finished = killed.events.steps("STEP_FINISHED")
    context = f"iteration {iteration}, killed {hit}, finished before the kill: {sorted(finished)}"

    again = run_pipex(*args, user=user)
    assert again.proc.returncode == 0, f"{context}: recovery build failed: {again.stderr} {again.stdout}"
    assert "Traceback" not in again.stderr, context
    ran = again.events.steps("STEP_FINISHED")
    cached = again.events.steps("STEP_CACHED")
    assert ran | cached == STEPS, f"{context}: {again.stdout}"
    assert not ran & finished, f"{context}: re-ran finished steps {sorted(ran & finished)}"
    assert containers(store) == [], f"{context}: containers of the killed build remain"
    assert staging_entries(store) == [], f"{context}: staging not cleared: {staging_entries(store)}"
    verify_store(store, user=user)
    return hit


def test_sigkill_at_random_moments_then_next_build_recovers(tmp_path: Path, store: Path) -> None:
    count = iterations("crash_iterations", 20)
    seed = iterations("seed", random.randrange(1 << 30))
    rng = random.Random(seed)
    root = write_project(tmp_path / "project", PIPELINE)
    hits = [_crash_and_recover(root, store, i, rng) for i in range(count)]
    print(f"crash iterations: {count} (seed {seed}): {hits}")
    assert len(hits) >= count


def test_sigkill_of_unprivileged_build_then_next_build_recovers(shared_tmp: Path, unprivileged: str) -> None:
    """As a normal user the output is root-owned while the container runs: a kill must not strand it."""
    count = iterations("crash_iterations_unprivileged", 3)
    rng = random.Random(iterations("seed", random.randrange(1 << 30)))
    root = write_project(shared_tmp / "project", PIPELINE)
    store = shared_tmp / "store"
    try:
        for i in range(count):
            # Killed while 'many' writes root-owned subdirectories into its output.
            _crash_and_recover(root, store, i, rng, user=unprivileged, step="many")
    finally:
        remove_containers(store)


def test_all_cached_build_after_a_kill_still_removes_the_killed_builds_container(tmp_path: Path, store: Path) -> None:
    """Found by this suite: a next build with nothing to run never created an executor, so the
    killed build's container ran on (here for a minute; a real step for hours)."""
    pipeline = f"""\
    id: leftover
    steps:
      - {{id: quick, image: {BUSYBOX}, cmd: echo q > /output/q}}
      - {{id: sleepy, image: {BUSYBOX}, cmd: sleep 60}}
    """
    root = write_project(tmp_path / "project", pipeline)
    assert run_pipex("build", "-f", str(root), "--store", str(store), "quick").proc.returncode == 0
    killed = start_pipex("build", "-f", str(root), "--store", str(store), "--json")
    deadline = time.monotonic() + 60
    while not any(c["Labels"].get("pipex.step") == "sleepy" for c in containers(store)):
        assert time.monotonic() < deadline, "the sleepy step never started"
        time.sleep(0.1)
    killed.proc.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert containers(store), "SIGKILL should have left the container running"
    again = run_pipex("build", "-f", str(root), "--store", str(store), "--json", "quick")
    assert again.proc.returncode == 0, again.stderr
    assert again.events.steps("STEP_CACHED") == {"quick"}
    assert containers(store) == []
    assert staging_entries(store) == []
    verify_store(store)
