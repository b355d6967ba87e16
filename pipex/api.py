"""The Python API behind the CLI: load, plan, build, gc. Tests and other programs call it too."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.errors import LockBusyError, UsageError

if TYPE_CHECKING:  # the report module is only needed once a build emits events
    from pipex.events import EventSink

__all__ = [
    "Project",
    "load",
    "open_store",
    "open_store_here",
    "workspace_name",
    "plan",
    "build",
    "gc",
    "condition_env",
    "show",
    "list_workspaces",
    "find_run",
    "remove_workspaces",
    "remove_step",
    "clean",
    "exec_step",
    "attach",
    "cancel",
]

_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Project:
    """A loaded pipeline with its project config."""

    pipeline: Any  # pipex.spec.model.Pipeline
    config: Any  # pipex.spec.config.Config


def load(path: Path | str | None = None, *, env_files: Sequence[Path | str] = ()) -> Project:
    """Load and validate the pipeline at ``path`` (file or directory, default cwd) and its ``.pipex.yml``."""
    from pipex.spec.config import load_config
    from pipex.spec.load import find_pipeline_file, load_pipeline

    file = find_pipeline_file(Path(path) if path is not None else None)
    config = load_config(file.parent)
    pipeline = load_pipeline(file, env_files=tuple(Path(f) for f in env_files), config=config)
    return Project(pipeline, config)


def open_store(explicit: Path | str | None = None, config: Any = None, *, repair: bool = False) -> Any:
    """Open the store: ``explicit`` > ``PIPEX_STORE`` > ``.pipex.yml store`` > the user cache dir.

    ``repair``: see ``Store.open`` (``verify --repair`` opens a store whose marker is damaged).
    """
    from pipex.store import Store, default_root

    if isinstance(explicit, Store):
        return explicit
    if explicit is None and not os.environ.get("PIPEX_STORE") and config is not None and config.store:
        explicit = config.store
    return Store.open(default_root(Path(explicit) if explicit is not None else None), repair=repair)


def open_store_here(
    explicit: Path | str | None = None, directory: Path | str | None = None, *, repair: bool = False
) -> Any:
    """Open the store a build in ``directory`` (default cwd) would use: its ``.pipex.yml`` counts."""
    from pipex.spec.config import find_config_file, load_config

    config = None
    if explicit is None and not os.environ.get("PIPEX_STORE"):
        root = Path(directory) if directory is not None else Path.cwd()
        if find_config_file(root) is not None:
            config = load_config(root)
    return open_store(explicit, config, repair=repair)


def _opened(store: Any) -> Any:
    """``store`` if it is an open Store, else the store it names (see ``open_store_here``)."""
    return store if hasattr(store, "read_run") else open_store_here(store)


def condition_env(env_files: Sequence[Path | str] = ()) -> dict[str, str]:
    """What ``if:`` conditions see: the host environment overlaid with ``--env-file`` values."""
    from pipex.spec.envfile import parse_env_file

    env = dict(os.environ)
    for file in env_files:
        env.update(parse_env_file(Path(file)))
    return env


def workspace_name(project: Project, explicit: str | None = None) -> str:
    """The workspace a build of ``project`` uses: ``explicit`` > ``.pipex.yml workspace`` > the pipeline id."""
    name = explicit or project.config.workspace or project.pipeline.id
    if not _WORKSPACE_RE.match(name) or name in (".", "..") or len(name) > 100:
        msg = f"invalid workspace name {name!r}: use at most 100 letters, digits, '_', '-' and '.', not starting with '.' or '-'"
        raise UsageError(msg)
    return name


def _check_workspace_root(store: Any, workspace: str, project: Project, explicit: bool) -> None:
    recorded = store.workspace_project_root(workspace)
    root = project.pipeline.root.resolve()
    if recorded is not None and Path(recorded) != root and not explicit:
        msg = (
            f"workspace '{workspace}' belongs to the project at {recorded}, not {root}; "
            f"pass --workspace {workspace} to adopt it, or another name to keep both"
        )
        raise UsageError(msg)


def _force(force: bool | str | Sequence[str] | None) -> bool | frozenset[str]:
    if force is None or force is False:
        return False
    if force is True:
        return True
    items = force.split(",") if isinstance(force, str) else list(force)
    ids = frozenset(i.strip() for i in items if i.strip())
    return ids or True


def _resolve_force(project: Project, force: bool | frozenset[str]) -> bool | frozenset[str]:
    """Expand ``--force`` ids and globs to step ids (UsageError naming the closest ids)."""
    if isinstance(force, frozenset):
        from pipex.engine.graph import resolve_names

        return frozenset(resolve_names(project.pipeline, tuple(sorted(force)), what="step to force"))
    return force


def _executor_factory(config: Any) -> Any:
    def make() -> Any:
        from pipex.executor.docker import DockerExecutor
        from pipex.executor.network import detect_network_config

        ca_bundle = getattr(config, "ca_bundle", None)
        return DockerExecutor(network=detect_network_config(Path(ca_bundle) if ca_bundle else None))

    return make


def plan(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    workspace: str | None = None,
    force: bool | str | Sequence[str] | None = False,
    env_files: Sequence[Path | str] = (),
    store: Path | str | None = None,
    offline: bool = False,
    project: Project | None = None,
) -> Any:
    """Return the Plan for ``targets``: per step cached / run (with reasons) / pending / skipped."""
    from pipex.engine.plan import make_plan

    project = project or load(path, env_files=env_files)
    opened = open_store(store, project.config)
    forced = _resolve_force(project, _force(force))
    return make_plan(
        project.pipeline,
        opened,
        workspace=workspace_name(project, workspace),
        targets=tuple(targets),
        force=forced,
        condition_env=condition_env(env_files),
        offline=offline,
    )


@contextmanager
def _signals_cancel(cancel: threading.Event, on_cancel: Any) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP (the terminal closed) set ``cancel`` and stop containers; restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        cancel.set()
        threading.Thread(target=on_cancel, name="pipex-cancel", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def build(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    workspace: str | None = None,
    force: bool | str | Sequence[str] | None = False,
    env_files: Sequence[Path | str] = (),
    store: Path | str | None = None,
    concurrency: int | None = None,
    keep_going: bool = False,
    verbose: bool = False,
    offline: bool = False,
    sink: EventSink | None = None,
    project: Project | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Build ``targets`` (default: all leaves) and what they need; return a BuildResult.

    Raises InterruptedBuild (exit 130) on SIGINT/SIGTERM after removing every
    container it started; finished steps stay recorded.
    """
    from pipex.errors import InterruptedBuild
    from pipex.engine.plan import Planner
    from pipex.engine.runner import BuildOptions, Runner

    project = project or load(path, env_files=env_files)
    pipeline = project.pipeline
    config = project.config
    sink = sink or (lambda event: None)
    jobs = concurrency or config.concurrency or os.cpu_count() or 2
    if jobs < 1:
        msg = f"concurrency must be at least 1, not {jobs}"
        raise UsageError(msg)
    name = workspace_name(project, workspace)
    forced = _resolve_force(project, _force(force))
    opened = open_store(store, config)
    cancel = cancel or threading.Event()
    cond_env = condition_env(env_files)
    with _store_lock(opened, sink):
        _check_workspace_root(opened, name, project, explicit=workspace is not None)
        with _workspace_lock(opened, name, sink):
            opened.create_workspace(name, pipeline.root.resolve())
            planner = Planner(
                pipeline,
                opened,
                workspace=name,
                force=forced,
                condition_env=cond_env,
                offline=offline,
            )
            the_plan = planner.plan(tuple(targets))
            for warning in the_plan.warnings:
                _warn(sink, warning)
            runner = Runner(
                pipeline,
                opened,
                name,
                the_plan,
                planner=planner,
                executor_factory=_executor_factory(config),
                options=BuildOptions(concurrency=jobs, keep_going=keep_going, force=forced, verbose=verbose),
                sink=sink,
                cancel=cancel,
            )

            def stop_containers() -> None:
                if runner.executor_started:
                    runner.executor.stop_all()

            try:
                with _signals_cancel(cancel, stop_containers):
                    result = runner.run()
            finally:
                if runner.executor_started:
                    runner.executor.close()
    if result.interrupted:
        raise InterruptedBuild("build interrupted; finished steps are kept")
    return result


def _warn(sink: EventSink, message: str) -> None:
    from pipex.events import Event, EventKind

    sink(Event(EventKind.WARNING, data={"message": message}))


@contextmanager
def _store_lock(store: Any, sink: EventSink) -> Iterator[None]:
    """Hold the store lock shared; say so when a gc (or verify --repair) makes the build wait."""
    with ExitStack() as stack:
        try:
            stack.enter_context(store.shared_lock(blocking=False))
        except LockBusyError:
            message = "pipex gc or verify --repair is running on this store; waiting for it"
            _warn(sink, message)
            stack.enter_context(store.shared_lock())
        yield


@contextmanager
def _workspace_lock(store: Any, workspace: str, sink: EventSink) -> Iterator[None]:
    """Serialise builds of one workspace; say so when waiting for another build."""
    with ExitStack() as stack:
        try:
            stack.enter_context(store.lock(f"workspace-{workspace}", blocking=False))
        except LockBusyError:
            message = f"another build of workspace '{workspace}' is running; waiting for it"
            _warn(sink, message)
            stack.enter_context(store.lock(f"workspace-{workspace}"))
        yield


def gc(store: Path | str | None = None, *, dry_run: bool = False) -> Any:
    """Collect what no root references in the project's store (see ``open_store_here``); return the GcReport."""
    from pipex.store.gc import gc as collect

    return collect(_opened(store), dry_run=dry_run)


def show(workspace: str | None = None, *, store: Any = None) -> Any:
    """A workspace's steps with their latest runs (a ``pipex.ops.browse.WorkspaceView``)."""
    from pipex.ops import browse

    return browse.show(_opened(store), workspace)


def list_workspaces(*, store: Any = None) -> Any:
    """Every workspace of the store with sizes (``pipex.ops.browse.WorkspaceSummary`` list)."""
    from pipex.ops import browse

    return browse.list_workspaces(_opened(store))


def find_run(workspace: str | None, step: str, run: str | None = None, *, store: Any = None, succeeded: bool = False) -> Any:
    """The RunRecord of a step: ``run`` (id or prefix), else its latest (``succeeded``: current) run."""
    from pipex.ops import browse

    return browse.find_run(_opened(store), workspace, step, run, succeeded=succeeded)


def remove_workspaces(workspaces: Sequence[str], *, store: Any = None) -> Any:
    """Remove workspaces; refused (nothing removed) while a live build holds any of them."""
    from pipex.ops.workspaces import remove_workspaces as remove

    return remove(_opened(store), workspaces)


def remove_step(workspace: str, step: str, *, store: Any = None) -> Any:
    """Drop one step's refs from a workspace; refused while a live build holds it."""
    from pipex.ops.workspaces import remove_step as remove

    return remove(_opened(store), workspace, step)


def clean(*, store: Any = None, collect: bool = True, project_root: Path | str | None = None) -> Any:
    """Remove the workspaces of ``project_root`` (None: all of the store), then gc; refused while a live build holds one."""
    from pipex.ops.workspaces import clean as clean_store

    root = Path(project_root) if project_root is not None else None
    return clean_store(_opened(store), collect=collect, project_root=root)


def exec_step(file: Path | str, workspace: str | None = None, **options: Any) -> Any:
    """Run one step from ``file`` against ``workspace``'s current runs (see ``pipex.ops.exec``)."""
    from pipex.ops.exec import exec_step as run_one

    return run_one(file, workspace, **options)


def attach(workspace: str | None = None, on_line: Any = print, *, store: Any = None) -> Any:
    """Replay the workspace's latest build log and follow it to the end; return its ``AttachResult``."""
    from pipex.ops import record as detach
    from pipex.ops.workspaces import resolve_workspace

    opened = _opened(store)
    return detach.attach(opened, resolve_workspace(opened, workspace), on_line)


def cancel(workspace: str | None = None, *, store: Any = None) -> int:
    """Stop the live build of ``workspace`` (SIGTERM) and wait; return its recorded exit code (130)."""
    from pipex.ops import record as detach
    from pipex.ops.workspaces import resolve_workspace

    opened = _opened(store)
    return detach.cancel(opened, resolve_workspace(opened, workspace))
