"""``pipex plan`` and ``pipex build``: a project's targets -> a Plan, and the Plan built in a BuildSession."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import UsageError
from pipex.ops.project import (
    Project,
    check_workspace_root,
    condition_env,
    executor_factory,
    load,
    open_remote,
    open_store,
    parse_force,
    workspace_name,
)

if TYPE_CHECKING:
    from pipex.engine.plan import Plan, Planner
    from pipex.engine.session import BuildSession
    from pipex.remote.backend import StepBackend
    from pipex.engine.results import BuildResult
    from pipex.store.store import Store
    from pipex.events import EventSink

__all__ = ["plan", "build"]


def plan(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    workspace: str | None = None,
    force: bool | str | Sequence[str] | None = False,
    env_files: Sequence[Path | str] = (),
    store: Store | Path | str | None = None,
    offline: bool = False,
    project: Project | None = None,
    remote: str | None = None,
    pull: str | None = None,
) -> Plan:
    """Return the Plan for ``targets``: per step cached / run (with reasons) / pending / skipped.

    With a remote cache, a fingerprint with no local run is looked up there
    (``cached (remote run …)``); nothing is written, locally or remotely.
    """
    from pipex.engine.plan import make_plan

    project = project or load(path, env_files=env_files)
    opened = open_store(store, project.config)
    return make_plan(
        project.pipeline,
        opened,
        workspace=workspace_name(project, workspace),
        targets=tuple(targets),
        force=parse_force(project, force),
        condition_env=condition_env(env_files),
        offline=offline,
        remote=lambda: open_remote(project.config, remote=remote, pull=pull, push=False),
    )


def build(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    workspace: str | None = None,
    force: bool | str | Sequence[str] | None = False,
    env_files: Sequence[Path | str] = (),
    store: Store | Path | str | None = None,
    concurrency: int | None = None,
    keep_going: bool = False,
    verbose: bool = False,
    offline: bool = False,
    sink: EventSink | None = None,
    project: Project | None = None,
    cancel: threading.Event | None = None,
    remote: str | None = None,
    pull: str | None = None,
    push: bool | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
) -> BuildResult:
    """Build ``targets`` (default: all leaves) and what they need; return a BuildResult.

    Raises InterruptedBuild (exit 130) on SIGINT/SIGTERM after removing every
    container it started; finished steps stay recorded. ``remote`` (a URL or
    ``off``), ``pull`` and ``push`` override the project's remote cache.
    ``executor`` (local, dask, slurm) and ``scheduler`` override ``.pipex.yml executor:``;
    a cluster executor runs the steps on its workers through the remote cache.
    """
    from pipex.engine.job import JobRunner
    from pipex.engine.plan import Planner
    from pipex.engine.results import BuildOptions
    from pipex.engine.scheduler import Scheduler
    from pipex.engine.session import BuildSession
    from pipex.errors import InterruptedBuild

    from pipex.remote.cluster_config import executor_config

    project = project or load(path, env_files=env_files)
    pipeline = project.pipeline
    config = project.config
    if concurrency is not None and concurrency < 1:
        msg = f"concurrency must be at least 1, not {concurrency}"
        raise UsageError(msg)
    name = workspace_name(project, workspace)
    forced = parse_force(project, force)
    where = executor_config(config.executor, root=config.root, kind=executor, scheduler=scheduler)
    opened = open_store(store, config)
    cache = open_remote(config, remote=remote, pull=pull, push=push)
    backend = None
    if not where.local:
        from pipex.ops.cluster import make_backend

        backend = make_backend(where, cache)
        assert cache is not None
        # Every input and output of a cluster build travels through the remote: it cannot be optional.
        cache.config = replace(cache.config, required=True)
    session = BuildSession(opened, name, executor_factory=executor_factory(config), sink=sink, cancel=cancel, remote=cache)
    if cache is not None:
        cache.on_warning(session.warn)
    with session.store_lock():
        check_workspace_root(opened, name, project, explicit=workspace is not None)
        with session.workspace_lock():
            opened.create_workspace(name, pipeline.root.resolve())
            planner = Planner(
                pipeline, opened, workspace=name, force=forced, condition_env=condition_env(env_files), offline=offline,
                remote=cache,
            )
            the_plan = planner.plan(tuple(targets))
            for warning in planner.images.warnings:
                session.warn(warning)
            with session.running():
                if backend is None:
                    jobs = concurrency or config.concurrency or os.cpu_count() or 2
                    options = BuildOptions(concurrency=jobs, keep_going=keep_going, force=forced, verbose=verbose)
                    runner = JobRunner(session, root=pipeline.root, options=options, host_hasher=planner.host_hasher)
                    result = Scheduler(pipeline, the_plan, planner=planner, session=session, jobs=runner, options=options).run()
                else:
                    result = _build_on_cluster(backend, session, planner, the_plan, concurrency, keep_going, forced, verbose)
    if result.interrupted:
        raise InterruptedBuild("build interrupted; finished steps are kept")
    return result


def _build_on_cluster(
    backend: StepBackend,
    session: BuildSession,
    planner: Planner,
    the_plan: Plan,
    concurrency: int | None,
    keep_going: bool,
    forced: bool | frozenset[str],
    verbose: bool,
) -> BuildResult:
    """Run ``the_plan``'s steps on ``backend``'s workers (-j default: the slots the cluster offers)."""
    from pipex.engine.cluster_runner import ClusterJobRunner
    from pipex.engine.results import BuildOptions
    from pipex.engine.scheduler import Scheduler
    from pipex.ops.cluster import new_build_id, started_backend

    build_id = new_build_id()
    pipeline = planner.pipeline
    options = BuildOptions(concurrency=concurrency or 1, keep_going=keep_going, force=forced, verbose=verbose)
    runner = ClusterJobRunner(
        session, backend, build_id=build_id, root=pipeline.root, options=options, host_hasher=planner.host_hasher
    )
    with started_backend(backend, build_id, runner.on_remote_log):
        if concurrency is None:
            options = replace(options, concurrency=backend.capacity or 1)
            runner.options = options
        return Scheduler(pipeline, the_plan, planner=planner, session=session, jobs=runner, options=options).run()
