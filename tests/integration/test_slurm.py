"""SLURM end to end (opt-in: PIPEX_TEST_SLURM=1): a single-node SLURM on loopback, SeaweedFS, the real Docker engine.

Each step is an ``sbatch --wrap "pipex worker run-job s3://…"``; completion
comes from the worker's answer on the remote, never SLURM's exit code.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seaweed import WRITER
from tests.slurm_cluster import Slurm, slurm_available, start_slurm

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, remove_containers

pytestmark = [
    pytest.mark.docker,
    pytest.mark.remote,
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("PIPEX_TEST_SLURM") != "1", reason="opt-in: PIPEX_TEST_SLURM=1"),
]


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[Slurm]:
    """A single-node SLURM for this test."""
    why = slurm_available()
    if why is not None:
        pytest.fail(f"PIPEX_TEST_SLURM=1 but {why}")
    started = start_slurm(tmp_path / "slurm")
    yield started
    started.stop()


def _config(tmp_path: Path, seaweed: Any, bucket: str) -> str:
    return (
        f"remote: {{url: 's3://{bucket}/team', endpoint: '{seaweed.endpoint}'}}\n"
        f"executor: {{kind: slurm, partition: pipex, pipex: '{sys.executable} -m pipex', "
        f"sbatchArgs: ['--output={tmp_path}/slurm-%j.out']}}\n"
    )


def test_ctrl_c_of_a_slurm_build_cancels_its_jobs_and_their_containers_go(tmp_path: Path, seaweed: Any, bucket: str, slurm: Slurm) -> None:
    from .build_helpers import containers

    node_store = tmp_path / "node-store"
    cli = Cli(tmp_path / "project", tmp_path / "store", env={**WRITER.env(), **slurm.env, "PIPEX_WORKER_STORE": str(node_store)})
    steps = "".join(f'  - {{id: s{i}, image: {BUSYBOX}, cmd: "sleep 120; echo {i} > /output/x"}}\n' for i in range(2))
    cli.write(f"id: batch\nsteps:\n{steps}", config=_config(tmp_path, seaweed, bucket))
    process = cli.start("build")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len([c for c in containers(node_store) if c.get("State") == "running"]) < 2:
        time.sleep(0.3)
    assert len(containers(node_store)) == 2, "the steps never started on the node"
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    process.communicate(timeout=60)
    assert process.returncode == 130
    while containers(node_store) and time.monotonic() - sent < 15:
        time.sleep(0.3)
    assert containers(node_store) == [], f"containers left {time.monotonic() - sent:.1f} s after Ctrl-C"


def test_a_slurm_build_runs_each_step_as_a_batch_job_and_adopts_its_run(tmp_path: Path, seaweed: Any, bucket: str, slurm: Slurm) -> None:
    node_store = tmp_path / "node-store"
    cli = Cli(tmp_path / "project", tmp_path / "store", env={**WRITER.env(), **slurm.env, "PIPEX_WORKER_STORE": str(node_store)})
    steps = "".join(f'  - {{id: s{i}, image: {BUSYBOX}, cmd: "sleep 1; echo {i} > /output/x"}}\n' for i in range(4))
    steps += f'  - {{id: total, image: {BUSYBOX}, inputs: [{{step: s0}}, {{step: s3}}], cmd: "cat /input/s0/x /input/s3/x > /output/t"}}\n'
    steps += f'  - {{id: broken, image: {BUSYBOX}, cmd: "echo on the node >&2; exit 4"}}\n'
    cli.write(f"id: batch\nsteps:\n{steps}", config=_config(tmp_path, seaweed, bucket))
    started = time.monotonic()
    done = cli.run("build", "--json", "-k")
    elapsed = time.monotonic() - started
    events = cli.events(done.stdout)
    assert done.returncode == 1, done.stderr  # 'broken' fails; -k builds the rest
    finished = sorted(e["step"] for e in events if e["event"] == "STEP_FINISHED")
    assert finished == ["s0", "s1", "s2", "s3", "total"], done.stderr
    failed = next(e for e in events if e["event"] == "STEP_FAILED")
    assert failed["step"] == "broken" and failed["exitCode"] == 4
    assert "on the node" in cli.run("logs", "batch", "broken").stderr
    assert cli.run("cat", "batch", "total", "t").stdout == "0\n3\n"
    overheads = sorted(
        e["time"] - next(s["time"] for s in events if s["event"] == "STEP_STARTING" and s["step"] == e["step"]) - e["durationMs"] / 1000
        for e in events if e["event"] == "STEP_FINISHED"
    )
    print(f"slurm: 6 steps in {elapsed:.1f} s; per-step overhead beyond the container, median {overheads[len(overheads) // 2]:.2f} s")
    assert remove_containers(node_store) == []
