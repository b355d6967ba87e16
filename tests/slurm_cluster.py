"""A single-node SLURM on loopback for the opt-in SLURM tests (Debian's slurmctld, slurmd, munge).

``start_slurm(dir)`` writes a ``slurm.conf`` with free ports, its own spool
and state directories, one node (this host, 8 slots) and one partition;
starts ``slurmctld`` and ``slurmd`` in the foreground as children; returns
once ``sinfo`` says the node is idle. Commands find it through ``SLURM_CONF``.
munged must run (``scripts/provision-slurm`` starts it). Stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Slurm", "start_slurm", "slurm_available"]


def slurm_available() -> str | None:
    """None when a SLURM can be started here, else why not."""
    for command in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munge"):
        if shutil.which(command) is None and not Path(f"/usr/sbin/{command}").exists():
            return f"{command} is not installed (scripts/provision-slurm)"
    if subprocess.run(["munge", "-n"], capture_output=True, check=False).returncode != 0:
        return "munged does not answer (scripts/provision-slurm starts it)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Slurm:
    """A running single-node SLURM: the environment that selects it, its processes."""

    directory: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        """Cancel what is queued, then stop the daemons by pid."""
        subprocess.run(["scancel", "--full", "--user", str(os.getuid())], env={**os.environ, **self.env}, capture_output=True, check=False)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def start_slurm(directory: Path, *, timeout: float = 60) -> Slurm:
    """Start slurmctld + slurmd for this host on free loopback ports."""
    host = socket.gethostname().split(".")[0]
    for name in ("spool", "state", "log"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    conf = directory / "slurm.conf"
    conf.write_text(f"""\
ClusterName=pipextest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile={directory}/slurmctld.pid
SlurmdPidFile={directory}/slurmd.pid
SlurmdSpoolDir={directory}/spool
StateSaveLocation={directory}/state
SlurmctldLogFile={directory}/log/slurmctld.log
SlurmdLogFile={directory}/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/linear
SlurmdParameters=config_overrides
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=pipex Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
""")
    env = {"SLURM_CONF": str(conf)}
    full = {**os.environ, **env}
    slurm = Slurm(directory, env)
    for daemon in ("slurmctld", "slurmd"):
        slurm.processes.append(
            subprocess.Popen([daemon, "-D", "-f", str(conf)], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    deadline = time.monotonic() + timeout
    while True:
        state = subprocess.run(["sinfo", "--noheader", "--format", "%t"], env=full, capture_output=True, text=True, check=False)
        if state.stdout.strip() == "idle":
            return slurm
        if time.monotonic() > deadline or any(p.poll() is not None for p in slurm.processes):
            slurm.stop()
            logs = " ".join((directory / "log" / n).read_text()[-500:] for n in ("slurmctld.log", "slurmd.log") if (directory / "log" / n).exists())
            raise RuntimeError(f"SLURM did not come up: {state.stdout.strip() or state.stderr.strip()} {logs}")
        time.sleep(0.3)
