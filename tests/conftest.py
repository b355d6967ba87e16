"""Shared pytest fixtures: temp stores and projects; the docker marker's daemon check."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Docker-marked tests need a daemon: say how to get one instead of a cryptic error."""
    if not any(item.get_closest_marker("docker") for item in items):
        return
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
        return
    except Exception as error:  # any failure means: no usable daemon
        reason = f"no Docker daemon answers ({error}); run scripts/provision-docker"
    required = os.environ.get("PIPEX_REQUIRE_DOCKER") or os.environ.get("CI")
    if required:
        pytest.exit(f"docker-marked tests cannot run: {reason}", returncode=1)
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.skip(reason=reason))
