"""The SLURM backend: a worker job per ``sbatch --wrap "pipex worker run-job s3://…"`` (``REMOTE.md`` §2).

- The job document goes to the remote first (``jobs/<build>/<key>.json``);
  the batch job only names it, so no file system need be shared.
- Completion is the worker's answer on the remote (``results/<build>/<key>.json``),
  never SLURM's exit code. One poller per build lists that prefix and runs
  one ``squeue --name pipex-<build>`` every few seconds, never a query per job;
  a job that left the queue without an answer failed (its ``slurm-<id>.out`` says why).
- Cancel: ``scancel --name pipex-<build>``; the worker stops its container on SIGTERM.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipex.errors import ClusterError, RemoteError
from pipex.remote.backend import BackendLost, JobDocument, LogSink, Outcome
from pipex.remote.layout import job_key, result_key

if TYPE_CHECKING:
    from pipex.remote.cache import RemoteCache
    from pipex.remote.cluster_config import ExecutorConfig

__all__ = ["SlurmBackend", "SlurmHandle", "POLL_SEC"]

POLL_SEC = 2.0
_DEFAULT_SLOTS = 8
_GONE_POLLS = 3  # a job missing from squeue this many polls in a row, without an answer, has failed


@dataclass
class SlurmHandle:
    """A submitted batch job: its key and SLURM job id."""

    key: str
    job_id: str


class SlurmBackend:
    """Step jobs as SLURM batch jobs; answers come back through the remote."""

    name = "slurm"

    def __init__(self, config: ExecutorConfig, remote: RemoteCache, *, version: str) -> None:
        """Nothing is contacted until ``start``."""
        self.config = config
        self.remote = remote
        self._version = version
        self._build_id = ""
        self._answers: dict[str, JobDocument] = {}
        self._queued: set[str] = set()  # SLURM job ids in the queue at the last poll
        self._missing: dict[str, int] = {}
        self._submitted: dict[str, SlurmHandle] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._lost: BackendLost | None = None
        self.polls = 0  # squeue calls made (the benchmark prints it)

    @property
    def capacity(self) -> int | None:
        """``executor.slots`` (default 8): SLURM queues the rest."""
        return self.config.slots or _DEFAULT_SLOTS

    def start(self, build_id: str, logs: LogSink | None) -> None:
        """Check SLURM's commands are here; start the poller (live lines are not streamed: logs come at the end)."""
        for command in ("sbatch", "squeue", "scancel"):
            if shutil.which(command) is None:
                msg = f"the slurm executor needs SLURM's {command} on PATH"
                raise ClusterError(msg)
        self._build_id = build_id
        self._poller = threading.Thread(target=self._poll_loop, name="pipex-slurm-poll", daemon=True)
        self._poller.start()

    def _job_name(self) -> str:
        return f"pipex-{self._build_id}"

    def submit(self, key: str, job: JobDocument) -> SlurmHandle:
        """Put the job on the remote, then ``sbatch`` a wrapper that runs it."""
        config = self.remote.config
        where = job_key(self._build_id, key)
        self.remote.blobs.put(where, json.dumps(dict(job), sort_keys=True).encode())
        command = [*shlex.split(self.config.pipex_command), "worker", "run-job", f"s3://{config.bucket}/{config.prefix}{where}"]
        if config.endpoint:
            command += ["--endpoint", config.endpoint]
        if config.region:
            command += ["--region", config.region]
        argv = ["sbatch", "--parsable", "--job-name", self._job_name()]
        if self.config.partition:
            argv += ["--partition", self.config.partition]
        if self.config.account:
            argv += ["--account", self.config.account]
        argv += [*self.config.sbatch_args, "--wrap", shlex.join(command)]
        handle = SlurmHandle(key, _slurm(argv, 60).strip().split(";")[0])
        with self._cond:
            self._submitted[key] = handle
            self._queued.add(handle.job_id)
        return handle

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Outcome]:
        """The handles the poller has an answer for (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done: list[Outcome] = []
                for handle in handles:
                    if handle.key in self._answers:
                        done.append((handle, self._answers[handle.key]))
                    elif self._lost is not None:
                        done.append((handle, self._lost))
                left = deadline - time.monotonic()
                if done or left <= 0:
                    return done
                self._cond.wait(left)

    def _poll_loop(self) -> None:
        while not self._stop.wait(POLL_SEC):
            try:
                self._poll()
            except (RemoteError, ClusterError) as error:
                with self._cond:
                    self._lost = BackendLost(f"cannot follow the SLURM jobs: {str(error).splitlines()[0]}")
                    self._cond.notify_all()
                return

    def _poll(self) -> None:
        """One round: which answers are on the remote, and which jobs are still queued (one squeue)."""
        prefix = result_key(self._build_id, "")[: -len(".json")]
        present = {info.key for info in self.remote.blobs.list_keys(prefix)}
        with self._cond:
            pending = [h for k, h in self._submitted.items() if k not in self._answers]
        for handle in pending:
            key = result_key(self._build_id, handle.key)
            if key in present:
                data = self.remote.blobs.get(key)
                if data is not None:
                    self._answer(handle, json.loads(data))
        queued = self._squeue()
        self.polls += 1
        for handle in pending:
            if handle.key in self._answers or handle.job_id in queued:
                self._missing.pop(handle.job_id, None)
                continue
            self._missing[handle.job_id] = self._missing.get(handle.job_id, 0) + 1
            if self._missing[handle.job_id] >= _GONE_POLLS:
                reason = f"SLURM job {handle.job_id} ended without an answer (see its slurm-{handle.job_id}.out)"
                self._answer(handle, {"format": 1, "fingerprint": "", "status": "failed", "reason": reason})

    def _answer(self, handle: SlurmHandle, doc: JobDocument) -> None:
        with self._cond:
            self._answers[handle.key] = doc
            self._cond.notify_all()

    def _squeue(self) -> set[str]:
        out = _slurm(["squeue", "--noheader", "--name", self._job_name(), "--format", "%i"], 30)
        return {line.strip() for line in out.splitlines() if line.strip()}

    def cancel(self, handles: Sequence[Any]) -> None:
        """``scancel --name pipex-<build>``: every job of the build (best effort)."""
        try:
            subprocess.run(["scancel", "--name", self._job_name()], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        """Stop the poller."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)


def _slurm(argv: list[str], timeout: float) -> str:
    """Run a SLURM command; its stdout, or ClusterError with its last line of complaint."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ClusterError(f"{argv[0]} failed: {error}") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise ClusterError(f"{argv[0]} failed: {last[0]}")
    return done.stdout
