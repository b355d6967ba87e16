"""A real Dask cluster for the cluster tests, in its own process: a LocalCluster on 127.0.0.1, or the CLI processes.

``start_local_cluster`` runs ``LocalCluster(processes=True, resources={"docker": N})``
in a child process (so a test can kill its scheduler, or one of its
workers, with kill -9), each worker with its own persistent store outside
Dask's scratch directory (``PIPEX_WORKER_STORE=<dir>/worker-{name}``) and the
writer's S3 credentials. ``start_cli_cluster`` starts ``dask scheduler`` and
``dask worker`` processes instead (optionally over TLS). Both stop by pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DaskCluster", "start_local_cluster", "start_cli_cluster", "worker_stores"]

_LOCAL = """
import sys, time
from distributed import LocalCluster
if __name__ == "__main__":
    n, slots = int(sys.argv[1]), int(sys.argv[2])
    preload = sys.argv[3:] or None
    cluster = LocalCluster(n_workers=n, threads_per_worker=slots, processes=True, host="127.0.0.1",
                           dashboard_address=None, resources={"docker": slots}, preload=preload)
    print(cluster.scheduler_address, flush=True)
    while True:
        time.sleep(1)
"""


@dataclass
class DaskCluster:
    """A running cluster: its scheduler address and the processes to stop."""

    address: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    directory: Path = Path()

    def kill_scheduler(self) -> None:
        """kill -9 the scheduler's process (a LocalCluster: the whole cluster's parent)."""
        self.processes[0].send_signal(signal.SIGKILL)
        self.processes[0].wait(10)

    def stop(self) -> None:
        """Stop every process of the cluster (their groups: a LocalCluster's workers too)."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # orphaned workers of a killed scheduler
            except (ProcessLookupError, PermissionError):
                pass


def _worker_env(directory: Path, env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEX_", "AWS_"))}
    return {**base, "PIPEX_WORKER_STORE": str(directory / "worker-{name}"), **env}


def start_local_cluster(
    directory: Path, env: dict[str, str], *, workers: int = 2, slots: int = 4, preload: list[str] | None = None
) -> DaskCluster:
    """A LocalCluster of ``workers`` × ``slots`` in a child process; returns once its scheduler answers."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", _LOCAL, str(workers), str(slots), *(preload or [])],
        cwd=directory, env=_worker_env(directory, env), stdout=subprocess.PIPE, stderr=open(directory / "cluster.log", "w"),  # noqa: SIM115
        text=True, start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("tcp://"):
        process.kill()
        raise RuntimeError(f"the Dask cluster did not start: {(directory / 'cluster.log').read_text()[-2000:]}")
    return DaskCluster(line, [process], directory)


def start_cli_cluster(
    directory: Path, env: dict[str, str], *, slots: int = 2, tls: dict[str, Path] | None = None, timeout: float = 60
) -> DaskCluster:
    """``dask scheduler`` on a free port and one ``dask worker --resources docker=N`` (TLS when ``tls`` has ca/cert/key)."""
    directory.mkdir(parents=True, exist_ok=True)
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    security: list[str] = []
    if tls:
        security = ["--tls-ca-file", str(tls["ca"]), "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"])]
    protocol = ["--protocol", "tls"] if tls else []
    log = directory / "scheduler.log"
    scheduler = subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0", "--no-dashboard", *protocol, *security],
        cwd=directory, env=_worker_env(directory, env), stdout=subprocess.DEVNULL, stderr=open(log, "w"),  # noqa: SIM115
        text=True, start_new_session=True,
    )
    cluster = DaskCluster("", [scheduler], directory)
    deadline = time.monotonic() + timeout
    while not cluster.address:
        found = re.search(r"Scheduler at:\s+(\S+)", log.read_text())
        if found:
            cluster.address = found.group(1)
        elif scheduler.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError(f"dask scheduler did not start: {log.read_text()[-2000:]}")
        else:
            time.sleep(0.2)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.address, "--nthreads", str(slots),
         "--resources", f"docker={slots}", "--name", "cli-0", "--no-dashboard", "--host", "127.0.0.1", *security],
        cwd=directory, env=_worker_env(directory, env), stdout=subprocess.DEVNULL,
        stderr=open(directory / "worker.log", "w"), text=True, start_new_session=True,  # noqa: SIM115
    )
    cluster.processes.append(worker)
    while "Registered to" not in (directory / "worker.log").read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError(f"dask worker did not start: {(directory / 'worker.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return cluster


def worker_stores(directory: Path) -> list[Path]:
    """The workers' own stores the cluster made under ``directory``."""
    return sorted(p for p in directory.glob("worker-*") if p.is_dir())
