"""On Podman's Docker-compatible API: timeouts and Ctrl-C act on a silent step, runtimes are checked, plan finds localhost/ images.

A real ``podman system service`` on a private socket, started and stopped by
the fixture (scripts/provision-podman installs Podman and loads the offline
busybox image into it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.podman]

BUSYBOX = "pipex-test/busybox:1"  # Podman holds it as localhost/pipex-test/busybox:1


@pytest.fixture(scope="module")
def podman_host() -> Iterator[str]:
    """``unix://…`` of a Podman API service of this module's own; stopped (by pid) afterwards."""
    if shutil.which("podman") is None:
        if os.environ.get("PIPEX_REQUIRE_DOCKER") or os.environ.get("CI"):
            pytest.fail("podman is not installed: run scripts/provision-podman")
        pytest.skip("podman is not installed (scripts/provision-podman)")
    work = Path(tempfile.mkdtemp(prefix="pipex-podman-"))
    # This sandbox may not raise rlimits: give containers modest ones explicitly.
    conf = work / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
    socket_path = work / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"unix://{socket_path}"
    finally:
        service.terminate()
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
        shutil.rmtree(work, ignore_errors=True)


def _leftovers(store: Path) -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label=pipex.store={store.resolve()}"], capture_output=True, text=True
    )
    return done.stdout.split()


@pytest.fixture
def project(tmp_path: Path, podman_host: str) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path / "project"
    root.mkdir()
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if k != "PIPEX_DEBUG"}
    env.update(DOCKER_HOST=podman_host, PIPEX_STORE=str(store), NO_COLOR="1")
    yield root, env
    left = _leftovers(store)
    if left:
        subprocess.run(["podman", "rm", "-f", *left], capture_output=True)
    assert not left, f"containers left on podman: {left}"


def _pipex(root: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipex", *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("setup", ["", "\n    setup: {cmd: 'true'}"], ids=["direct", "keeper"])
def test_a_silent_step_times_out_on_time(project: tuple[Path, dict[str, str]], setup: str) -> None:
    root, env = project
    (root / "pipeline.yaml").write_text(
        f"id: pod\nsteps:\n  - id: silent\n    image: {BUSYBOX}{setup}\n    cmd: sleep 60\n    timeoutSec: 2\n"
    )
    started = time.monotonic()
    done = _pipex(root, env, "build")
    assert done.returncode == 1, done.stderr
    assert "timed out after 2s" in done.stderr
    assert time.monotonic() - started < 20


def test_ctrl_c_stops_a_silent_step_at_once(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    (root / "pipeline.yaml").write_text(f"id: pod\nsteps:\n  - {{id: silent, image: {BUSYBOX}, cmd: sleep 60}}\n")
    process = subprocess.Popen([sys.executable, "-m", "pipex", "build"], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    store = Path(env["PIPEX_STORE"])
    deadline = time.monotonic() + 30
    while not _leftovers(store) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 130
    assert time.monotonic() - sent < 15
    assert _leftovers(store) == []


def test_plan_finds_podman_localhost_images_and_a_build_caches(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    (root / "pipeline.yaml").write_text(f"id: pod\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: echo hi > /output/x}}\n")
    plan = _pipex(root, env, "plan")
    assert "not present locally" not in plan.stdout + plan.stderr, plan.stdout
    assert _pipex(root, env, "build").returncode == 0
    again = _pipex(root, env, "plan")
    assert again.stdout.split()[:2] == ["cached", "s"], again.stdout


def test_a_runtime_the_engine_ignores_fails_the_step_in_one_line(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    (root / "pipeline.yaml").write_text(
        f"id: pod\nsteps:\n  - {{id: s, image: {BUSYBOX}, runtime: runsc, cmd: echo hi > /output/x}}\n"
    )
    done = _pipex(root, env, "build")
    assert done.returncode == 1, done.stderr
    assert "the engine ignored runtime 'runsc'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
