"""Resource faults: a full disk (a small tmpfs store), a Docker daemon restarted mid-build, 1 GB of logs.

The daemon test never touches the shared daemon: it starts a second
``dockerd`` on its own socket, data-root and exec-root, in a network
namespace of its own (no bridge, no iptables), loads the busybox image into it with the docker CLI, and stops and
restarts that one. Both the tmpfs and the second daemon need root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import (
    BUSYBOX,
    PipexProcess,
    containers,
    iterations,
    remove_containers,
    run_pipex,
    staging_entries,
    start_pipex,
    verify_store,
    write_project,
)

pytestmark = pytest.mark.docker

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs and starting dockerd need root")


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Path]:
    """A store on a 24 MiB tmpfs; its containers are removed and the tmpfs unmounted afterwards."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(mountpoint)], check=True)
    store = mountpoint / "store"
    try:
        yield store
    finally:
        leftovers = remove_containers(store)
        subprocess.run(["umount", str(mountpoint)], check=False)
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        assert not leftovers, f"containers left behind: {leftovers}"


FULL_DISK = f"""\
id: full
steps:
  - {{id: small, image: {BUSYBOX}, cmd: echo fits > /output/small}}
  - id: big
    image: {BUSYBOX}
    inputs: [{{step: small}}]
    cmd: CMD
"""


@needs_root
@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        # The step itself hits ENOSPC and exits non-zero.
        pytest.param("head -c 64000000 /dev/zero > /output/big", "No space left on device", id="output-larger-than-disk"),
        # The step fills the disk but succeeds: ingest (tree, run record) finds no space.
        pytest.param(
            "head -c 64000000 /dev/urandom > /output/big; i=0; while [ $i -lt 50 ]; do echo $i > /output/f$i; i=$((i+1)); done; true",
            "No space left on device",
            id="disk-full-during-ingest",
        ),
    ],
)
def test_full_disk_fails_the_step_clearly_and_the_store_stays_valid(
    tmp_path: Path, small_store: Path, cmd: str, expected: str
) -> None:
    root = write_project(tmp_path / "project", FULL_DISK.replace("CMD", repr(cmd)))
    process = run_pipex("build", "-f", str(root), "--store", str(small_store), "--json")
    assert process.proc.returncode == 1, process.stderr + process.stdout
    assert "Traceback" not in process.stderr, process.stderr
    failed = process.events.of("STEP_FAILED")
    assert [e["step"] for e in failed] == ["big"], process.stdout + process.stderr
    said = failed[0]["reason"] + " ".join(failed[0].get("logTail") or [])
    assert expected in said, failed
    assert process.events.steps("STEP_FINISHED") == {"small"}
    assert staging_entries(small_store) == []
    verify_store(small_store)
    # gc frees what the failed step left; then a step that fits builds, and small stays cached.
    assert run_pipex("gc", "--store", str(small_store)).proc.returncode == 0
    write_project(root, FULL_DISK.replace("CMD", "echo fits too > /output/big"))
    again = run_pipex("build", "-f", str(root), "--store", str(small_store), "--json")
    assert again.proc.returncode == 0, again.stderr + again.stdout
    assert again.events.steps("STEP_CACHED") == {"small"}
    verify_store(small_store)


# -- a Docker daemon restarted mid-build ---------------------------------------------------------


@dataclass
class SecondDaemon:
    """A private dockerd: start, stop (like a service restart) and start again."""

    base: Path

    @property
    def host(self) -> str:
        """Its DOCKER_HOST."""
        return f"unix://{self.base}/d.sock"

    def _args(self) -> list[str]:
        b = self.base
        # Its own network namespace: a dockerd started with `--bridge none` deletes the
        # host's docker0 interface, which would break the shared daemon's networked
        # containers for every other test. Its containers need no network.
        return [
            "unshare", "--net", "dockerd", "--host", self.host, "--data-root", f"{b}/data", "--exec-root", f"{b}/exec",
            "--pidfile", f"{b}/d.pid", "--bridge", "none", "--iptables=false", "--ip6tables=false",
            "--shutdown-timeout", "2",
        ]  # fmt: skip

    def start(self, timeout: float = 60) -> None:
        """Start dockerd and wait until it answers."""
        log = open(self.base / "dockerd.log", "ab")
        self.proc = subprocess.Popen(self._args(), stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"second dockerd exited: {(self.base / 'dockerd.log').read_text()[-2000:]}")
            if subprocess.run(["docker", "-H", self.host, "version"], capture_output=True).returncode == 0:
                return
            time.sleep(0.25)
        raise AssertionError("second dockerd did not answer")

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containers) and wait for it and its containerd to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Its managed containerd shares the session: make sure nothing of it is left.
        subprocess.run(["pkill", "-s", str(self.proc.pid)], capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True).returncode == 0:
            time.sleep(0.2)


@pytest.fixture
def second_daemon() -> Iterator[SecondDaemon]:
    """A second dockerd with the busybox test image; stopped, unmounted and removed afterwards."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("dockerd", "docker", "unshare")):
        pytest.skip("a second dockerd needs root, dockerd, unshare and the docker CLI")
    base = Path(tempfile.mkdtemp(prefix="pipex-dockerd-", dir="/tmp"))
    daemon = SecondDaemon(base)
    try:
        daemon.start()
        save = subprocess.Popen(["docker", "save", BUSYBOX], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", daemon.host, "load"], stdin=save.stdout, check=True, capture_output=True)
        save.wait()
        yield daemon
    finally:
        if getattr(daemon, "proc", None) is not None:
            daemon.stop()
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(base)):
                subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_daemon_restart_mid_build_fails_the_step_clearly_and_next_build_recovers(
    tmp_path: Path, store: Path, second_daemon: SecondDaemon
) -> None:
    pipeline = f"""\
    id: restart
    steps:
      - {{id: first, image: {BUSYBOX}, cmd: echo one > /output/one}}
      - {{id: long, image: {BUSYBOX}, inputs: [{{step: first}}], cmd: sleep 30; echo done > /output/long}}
    """
    root = write_project(tmp_path / "project", pipeline)
    env = {"DOCKER_HOST": second_daemon.host}
    try:
        process = start_pipex("build", "-f", str(root), "--store", str(store), "--json", env=env)
        assert process.events.wait_for(lambda e: e.get("event") == "STEP_STARTING" and e.get("step") == "long")
        deadline = time.monotonic() + 30
        while not containers(store, second_daemon.host) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        second_daemon.stop()
        second_daemon.start()
        assert process.wait(timeout=120) == 1, process.stderr + process.stdout
        assert "Traceback" not in process.stderr, process.stderr
        failed = process.events.of("STEP_FAILED")
        assert [e["step"] for e in failed] == ["long"], process.stdout
        assert "Docker daemon" in failed[0]["reason"], failed
        assert "Error(" not in failed[0]["reason"], failed  # words, not a repr of nested exceptions
        assert process.events.steps("STEP_FINISHED") == {"first"}
        verify_store(store)
        # The daemon is back: the next build re-runs only the failed step and removes the dead container.
        write_project(root, pipeline.replace("sleep 30; ", ""))
        again = run_pipex("build", "-f", str(root), "--store", str(store), "--json", env=env)
        assert again.proc.returncode == 0, again.stderr + again.stdout
        assert again.events.steps("STEP_CACHED") == {"first"}
        assert again.events.steps("STEP_FINISHED") == {"long"}
        assert containers(store, second_daemon.host) == []
        assert staging_entries(store) == []
        verify_store(store)
    finally:
        if second_daemon.proc.poll() is None:
            remove_containers(store, second_daemon.host)


# -- a step producing 1 GB of logs ---------------------------------------------------------------


def _build_peak_rss_kb(root: Path, store: Path, *extra: str) -> tuple[PipexProcess, int]:
    """Build ``root`` and return the process and the peak RSS (VmHWM, KiB) of the pipex process."""
    process = start_pipex("build", "-f", str(root), "--store", str(store), "--json", *extra)
    peak_kb = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.1)
    process.wait(timeout=600)
    return process, peak_kb


@pytest.mark.slow
def test_a_gigabyte_of_logs_does_not_exhaust_memory(tmp_path: Path, store: Path) -> None:
    size = iterations("log_bytes", 1 << 30)
    pipeline = f"""\
    id: chatty
    steps:
      - id: logs
        image: {BUSYBOX}
        cmd: "yes \\"$(head -c 4095 /dev/zero | tr '\\\\0' x)\\" | head -c {size}; yes 'short lines on stderr' | head -c {size // 64} >&2; echo ok > /output/ok"
    """
    root = write_project(tmp_path / "project", pipeline)
    process, peak_kb = _build_peak_rss_kb(root, store)
    assert process.proc.returncode == 0, process.stderr
    run_dir = next((store / "runs").iterdir())
    assert (run_dir / "stdout.log").stat().st_size == size
    assert (run_dir / "stderr.log").stat().st_size == size // 64
    print(f"logs: pipex peak RSS {peak_kb / 1024:.0f} MiB for {size / (1 << 20):.0f} MiB of stdout")
    assert peak_kb < 250 * 1024, f"pipex peaked at {peak_kb / 1024:.0f} MiB"
    verify_store(store)


@pytest.mark.slow
def test_one_huge_log_line_with_verbose_does_not_exhaust_memory(tmp_path: Path, store: Path) -> None:
    """--verbose splits logs into line events: a line without end is cut, not accumulated."""
    size = iterations("log_line_bytes", 128 << 20)
    pipeline = f"""\
    id: oneline
    steps:
      - {{id: logs, image: {BUSYBOX}, cmd: "head -c {size} /dev/zero | tr '\\\\0' x; echo ok > /output/ok"}}
    """
    root = write_project(tmp_path / "project", pipeline)
    process, peak_kb = _build_peak_rss_kb(root, store, "--verbose")
    assert process.proc.returncode == 0, process.stderr
    assert sum(len(e.get("line", "")) for e in process.events.of("STEP_LOG")) == size
    assert (next((store / "runs").iterdir()) / "stdout.log").stat().st_size == size
    print(f"one line: pipex peak RSS {peak_kb / 1024:.0f} MiB for a {size / (1 << 20):.0f} MiB line")
    assert peak_kb < 250 * 1024, f"pipex peaked at {peak_kb / 1024:.0f} MiB"
