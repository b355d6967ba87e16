"""``pipex k8s manifests``: the Kubernetes Jobs the steps that would run get (a dry run; nothing is submitted).

A step gets a Job once its fingerprint is known: its inputs are built (here
or on the remote). Steps still waiting for inputs are listed in a comment.
Images must be pinned by digest: the image reference's registry digest as
the engine knows it (``RepoDigests``), or ``name@sha256:…`` in the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipex import __version__
from pipex.errors import UsageError
from pipex.ops.build import plan as make_plan
from pipex.ops.project import load, open_remote, open_store

__all__ = ["k8s_manifests"]


def k8s_manifests(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    namespace: str = "default",
    remote: str | None = None,
    worker_image: str = "pipex:latest",
) -> str:
    """The YAML stream of every Job (with its ConfigMap and NetworkPolicy) for the steps that would run."""
    from pipex.engine.plan import StepStatus
    from pipex.engine.cluster_runner import host_tree_of
    from pipex.engine.step_job import StepJob, WorkerJob
    from pipex.remote.k8s import job_manifests, to_yaml_stream

    project = load(path)
    cache = open_remote(project.config, remote=remote)
    if cache is None:
        raise UsageError("Kubernetes Jobs fetch and push through a remote cache: set remote: in .pipex.yml or --remote")
    store = open_store(None, project.config)
    the_plan = make_plan(path, targets=targets, project=project, remote=remote)
    planned = {sp.step_id: sp for sp in the_plan.steps}
    manifests = []
    waiting: list[str] = []
    unpinned: list[str] = []
    for decided in the_plan.steps:
        if decided.status is not StepStatus.RUN:
            if decided.status is StepStatus.PENDING:
                waiting.append(decided.step_id)
            continue
        step = project.pipeline.step(decided.step_id)
        inputs = {ref.step: planned[ref.step].output_tree if ref.step in planned else None for ref in step.inputs}
        job = StepJob.from_plan(step, decided, inputs, "; ".join(decided.reasons))
        hosts = {m.host: host_tree_of(store, project.pipeline.root / m.host, step.id) for m in (*step.mounts, *step.sources)}
        shipped = WorkerJob(job, "manifests", project.pipeline.id, cache.config.where(), hosts, pipex_version=__version__)
        image = _pinned(step.image)
        if image is None:
            unpinned.append(f"{step.id} ({step.image})")
            continue
        manifests += job_manifests(shipped.to_dict(), image=image, worker_image=worker_image, namespace=namespace)
    if unpinned:
        msg = (
            f"no registry digest for the image of {', '.join(unpinned)}: push it to a registry and "
            "pin it as name@sha256:… (a cluster must run the image the fingerprint names)"
        )
        raise UsageError(msg)
    header = "# pipex k8s manifests: nothing was submitted; apply with kubectl apply -f\n"
    if waiting:
        header += f"# waiting for their inputs (no fingerprint yet): {', '.join(waiting)}\n"
    return header + to_yaml_stream(manifests)


def _pinned(reference: str) -> str | None:
    """``reference`` pinned by its registry digest, or None when the engine knows none."""
    if "@sha256:" in reference:
        return reference
    from pipex.errors import PipexError
    from pipex.executor.docker import DockerExecutor

    executor = DockerExecutor()
    try:
        digests = executor.api.inspect_image(reference).get("RepoDigests") or []
    except (PipexError, Exception):  # noqa: BLE001 - an image the engine lacks has no digest either
        return None
    finally:
        executor.close()
    return str(digests[0]) if digests else None
