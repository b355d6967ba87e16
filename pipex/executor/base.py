"""What one step's container run needs and returns: the executor contract, free of Docker."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "Mount",
    "SecretFile",
    "NetworkConfig",
    "Invocation",
    "Phase",
    "ExecutionResult",
    "Executor",
    "TIMEOUT_EXIT_CODE",
    "CANCELLED_EXIT_CODE",
]

#: Exit code reported for a step killed by its timeout (as coreutils `timeout` does).
TIMEOUT_EXIT_CODE = 124
#: Exit code reported for a step killed because the build was cancelled (128 + SIGINT).
CANCELLED_EXIT_CODE = 130


@dataclass(frozen=True)
class Mount:
    """A host path bind-mounted into the step's container (read-only unless a cache)."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class SecretFile:
    """A secret mounted as ``/run/secrets/<name>`` (mode 0400); never in env, logs or meta."""

    name: str
    value: bytes = field(repr=False)


@dataclass(frozen=True)
class NetworkConfig:
    """What network-enabled phases get: a CA bundle to trust and the host's proxy variables."""

    ca_bundle: Path | None = None
    proxy_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """Everything needed to run one step in one container; built by ``pipex.engine.invocation``."""

    step_id: str
    image: str  # a reference or an image id ("sha256:…"); an id skips one lookup
    cmd: tuple[str, ...]
    env: Mapping[str, str]  # only these are passed (plus the image's own ENV)
    output_dir: Path  # host staging dir, bind-mounted rw at output_path
    stdout_path: Path  # logs are appended here as they come
    stderr_path: Path
    output_path: str = "/output"
    mounts: tuple[Mount, ...] = ()  # inputs (ro at /input/<step>), host mounts (ro), caches (rw)
    sources: tuple[tuple[Path, str], ...] = ()  # host file/dir -> container path, put_archive'd before start
    setup_cmd: tuple[str, ...] | None = None
    setup_network: bool = False
    network: bool = False  # network for the run phase (allowNetwork)
    setup_lock: Callable[[], AbstractContextManager[None]] | None = None  # held around the setup exec
    timeout_sec: float | None = None
    user: str | None = None
    read_only_rootfs: bool = False
    cap_drop: tuple[str, ...] = ()
    runtime: str | None = None
    cpus: float | None = None
    memory: str | None = None  # docker syntax: "512m", "2g"
    pids: int | None = None
    secrets: tuple[SecretFile, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # pipex.store, pipex.workspace, pipex.step, pipex.run
    on_log: Callable[[str, str], None] | None = None  # (stream "stdout"|"stderr", line without newline)
    on_phase: Callable[["Phase"], None] | None = None  # called as the setup and run phases begin
    workdir: str | None = None  # None: the image's WorkingDir
    owner: tuple[int, int] | None = None  # uid, gid to own output/caches afterwards; None: this process's
    # Where host-side temporaries of the step (the secret files) go: the build's
    # staging dir, which the next pipex command removes first thing if this
    # process is killed. None: the system temp dir (survives a crash).
    scratch_dir: Path | None = None


class Phase(enum.Enum):
    """The phase of a step's container run that failed."""

    SETUP = "setup"
    RUN = "run"


@dataclass(frozen=True)
class ExecutionResult:
    """How one step's container run ended."""

    exit_code: int
    timed_out: bool
    cancelled: bool
    failed_phase: Phase | None  # None when exit_code == 0
    image_id: str  # the id of the image actually used
    started_at: float  # time.time() when run() began
    finished_at: float
    message: str | None = None  # e.g. "timed out after 5s", "setup failed with exit code 3"

    @property
    def ok(self) -> bool:
        """True when the step succeeded."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


class Executor(Protocol):
    """Runs steps in containers; `DockerExecutor` is the real one, tests may fake it."""

    def run(self, invocation: Invocation, cancel: threading.Event) -> ExecutionResult:
        """Run one step to completion; thread-safe (called from N worker threads)."""
        ...

    def resolve_images(self, refs: Iterable[str]) -> dict[str, str | None]:
        """Map each ref to its local image id (None when absent), in one engine call."""
        ...

    def ensure_image(
        self, ref: str, progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
    ) -> str:
        """Return the local image id of ref, pulling it first if needed; ImageError if impossible.

        InterruptedBuild as soon as ``cancel`` is set during a pull.
        """
        ...

    def remove_leftovers(
        self, labels: Mapping[str, str], keep: Callable[[Mapping[str, str]], bool] | None = None
    ) -> int:
        """Remove containers carrying all these labels (left by killed processes) unless ``keep`` them; return how many."""
        ...

    def stop_all(self) -> None:
        """Stop and remove every container this executor started; safe from a signal handler thread."""
        ...

    def close(self) -> None:
        """Release the connection to the engine."""
        ...
