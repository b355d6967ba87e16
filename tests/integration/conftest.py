"""Integration fixtures: a real DockerExecutor, invocations with unique labels, and leak checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipex.executor.base import Invocation
from pipex.executor.network import detect_network_config

BUSYBOX = "pipex-test/busybox:1"
PYTHON = "pipex-test/python:3"


@pytest.fixture
def docker_api() -> Iterator[Any]:
    """A plain docker-py low-level client, for inspecting what the executor did."""
    import docker

    client = docker.APIClient(version="auto")
    yield client
    client.close()


@pytest.fixture
def test_labels(docker_api: Any) -> Iterator[dict[str, str]]:
    """Labels unique to this test; afterwards no container may carry them (any found are removed)."""
    labels = {"pipex.store": "/tmp/pipex-tests", "pipex.test": uuid.uuid4().hex}
    yield labels
    left = docker_api.containers(all=True, filters={"label": f"pipex.test={labels['pipex.test']}"})
    for container in left:
        docker_api.remove_container(container["Id"], force=True)
    assert not left, f"the test left {len(left)} container(s) behind"


@pytest.fixture
def executor() -> Iterator[Any]:
    """A DockerExecutor with the host's network config (CA bundle, proxy variables)."""
    from pipex.executor.docker import DockerExecutor

    ex = DockerExecutor(network=detect_network_config())
    yield ex
    ex.close()


@pytest.fixture
def make_invocation(tmp_path: Path, test_labels: dict[str, str]) -> Callable[..., Invocation]:
    """Build an Invocation with a fresh output dir and log files under tmp_path; kwargs override."""
    counter = iter(range(1_000_000))

    def make(cmd: tuple[str, ...] | str, **overrides: Any) -> Invocation:
        n = next(counter)
        output_dir = tmp_path / f"out{n}"
        output_dir.mkdir()
        if isinstance(cmd, str):
            cmd = ("sh", "-c", cmd)
        fields: dict[str, Any] = {
            "step_id": f"step{n}",
            "image": BUSYBOX,
            "cmd": cmd,
            "env": {},
            "output_dir": output_dir,
            "stdout_path": tmp_path / f"logs{n}" / "stdout.log",
            "stderr_path": tmp_path / f"logs{n}" / "stderr.log",
            "labels": {**test_labels, "pipex.step": f"step{n}"},
        }
        fields.update(overrides)
        return Invocation(**fields)

    return make


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    """A temp project and store built through pipex.api; containers labelled with the store must be gone after."""
    from .build_helpers import Project, remove_containers

    proj = Project(tmp_path / "project", tmp_path / "store")
    yield proj
    assert remove_containers(proj.store) == [], "the build left containers behind"
