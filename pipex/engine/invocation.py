"""A step job -> the executor's Invocation: mounts, caches and their locks, secrets, labels, log paths.

The only place that knows how a step's declared inputs, mounts, caches and
secrets become container mounts and files; the executor knows nothing of
steps or fingerprints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import PipexError
from pipex.events import Event, EventKind, EventSink
from pipex.executor.base import Invocation, Mount, Phase, SecretFile
from pipex.spec.model import Step
from pipex.store.locks import cache_lock_name
from pipex.store.owners import owner_token

if TYPE_CHECKING:
    from pipex.engine.job import StepJob
    from pipex.store.store import Store

__all__ = ["make_invocation", "read_secrets"]


def make_invocation(
    job: StepJob,
    *,
    store: Store,
    workspace: str,
    root: Path,
    output: Path,
    logs: Path,
    sink: EventSink,
    verbose: bool,
) -> Invocation:
    """Fill the empty ``output`` dir (copyToOutput inputs) and return the job's Invocation.

    ``root`` is the directory host paths are relative to (the project root,
    or the step file's directory for ``pipex exec``).
    """
    step = job.step
    for ref in step.inputs:
        tree = job.input_trees.get(ref.step)
        if ref.copy_to_output and tree:
            store.export(tree, output)
    mounts: list[Mount] = []
    for ref in step.inputs:
        tree = job.input_trees.get(ref.step)
        if tree:
            mounts.append(Mount(store.checkout(tree), f"/input/{ref.step}", True))
    for mapping in step.mounts:
        mounts.append(Mount(root / mapping.host, mapping.container, True))
    for cache in step.all_caches:
        mounts.append(Mount(store.cache_dir(workspace, cache.name), cache.path, False))
    exclusive = sorted(c.name for c in step.all_caches if c.exclusive)

    @contextmanager
    def setup_lock() -> Iterator[None]:
        # Sorted, so two steps needing the same caches never deadlock.
        with ExitStack() as held:
            for name in exclusive:
                held.enter_context(store.lock(cache_lock_name(workspace, name)))
            yield

    def on_log(stream: str, line: str) -> None:
        sink(Event(EventKind.STEP_LOG, step.id, {"stream": stream, "line": line}))

    def on_phase(phase: Phase) -> None:
        sink(Event(EventKind.STEP_PHASE, step.id, {"phase": phase.value}))

    resources = step.resources
    return Invocation(
        on_phase=on_phase,
        step_id=step.id,
        image=job.image_id,  # exactly the image the fingerprint names
        cmd=step.cmd,
        env=dict(step.env),
        output_dir=output,
        output_path=step.output_path,
        mounts=tuple(mounts),
        sources=tuple((root / s.host, s.container) for s in step.sources),
        setup_cmd=step.setup.cmd if step.setup else None,
        setup_network=bool(step.setup and step.setup.allow_network),
        network=step.allow_network,
        setup_lock=setup_lock if step.setup else None,
        timeout_sec=step.timeout_sec,
        user=step.user,
        read_only_rootfs=step.read_only_rootfs,
        cap_drop=step.cap_drop,
        runtime=step.runtime,
        cpus=resources.cpus if resources else None,
        memory=resources.memory if resources else None,
        pids=resources.pids if resources else None,
        secrets=tuple(read_secrets(step, root)),
        labels={
            "pipex.store": str(store.root),
            "pipex.workspace": workspace,
            "pipex.step": step.id,
            "pipex.run": job.fingerprint,
            "pipex.owner": owner_token(),  # a container whose owner is gone is a leftover
        },
        stdout_path=logs / "stdout.log",
        stderr_path=logs / "stderr.log",
        on_log=on_log if verbose else None,
        # Secrets live in this build's staging dir: a kill -9 leaves them only
        # until the next pipex command opens the store (it clears dead staging first).
        scratch_dir=output.parent,
    )


def read_secrets(step: Step, root: Path) -> Iterator[SecretFile]:
    """The step's secrets read from the host (env var or file, relative to ``root``); PipexError naming a missing one."""
    for secret in step.secrets:
        if secret.env is not None:
            value = os.environ.get(secret.env)
            if value is None:
                msg = f"step '{step.id}': secret '{secret.name}' needs env var {secret.env}, which is not set"
                raise PipexError(msg)
            yield SecretFile(secret.name, value.encode())
        elif secret.file is not None:
            path = Path(secret.file).expanduser()
            if not path.is_absolute():
                path = root / path
            try:
                yield SecretFile(secret.name, path.read_bytes())
            except OSError as error:
                msg = f"step '{step.id}': secret '{secret.name}': cannot read {path}: {error.strerror}"
                raise PipexError(msg) from None
