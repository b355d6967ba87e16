"""A project as every operation sees it: its pipeline and config, THE store it uses, its workspace name.

One rule each, used by every command: which store (``open_store``), which
store a directory's commands use (``open_store_here``), which workspace a
build uses (``workspace_name``), what ``if:`` sees (``condition_env``), and
how the executor is made (``executor_factory``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipex.errors import UsageError
from pipex.store.refs import workspace_name_problem

if TYPE_CHECKING:
    from pipex.engine.session import ExecutorFactory
    from pipex.executor.docker import DockerExecutor
    from pipex.remote.cache import RemoteCache
    from pipex.spec.config import Config
    from pipex.spec.model import Pipeline
    from pipex.store.store import Store

__all__ = [
    "Project",
    "load",
    "open_store",
    "open_store_here",
    "condition_env",
    "workspace_name",
    "check_workspace_root",
    "parse_force",
    "executor_factory",
    "open_remote",
]



@dataclass(frozen=True)
class Project:
    """A loaded pipeline with its project config."""

    pipeline: Pipeline
    config: Config


def load(path: Path | str | None = None, *, env_files: Sequence[Path | str] = ()) -> Project:
    """Load and validate the pipeline at ``path`` (file or directory, default cwd) and its ``.pipex.yml``."""
    from pipex.spec.config import load_config
    from pipex.spec.load import find_pipeline_file, load_pipeline

    file = find_pipeline_file(Path(path) if path is not None else None)
    config = load_config(file.parent)
    pipeline = load_pipeline(file, env_files=tuple(Path(f) for f in env_files), config=config)
    return Project(pipeline, config)


def open_store(explicit: Store | Path | str | None = None, config: Config | None = None, *, repair: bool = False) -> Store:
    """Open the store: ``explicit`` > ``PIPEX_STORE`` > ``.pipex.yml store`` > the user cache dir.

    ``repair``: see ``Store.open`` (``verify --repair`` opens a store whose marker is damaged).
    """
    from pipex.store.store import Store, default_root

    if isinstance(explicit, Store):
        return explicit
    if explicit is None and not os.environ.get("PIPEX_STORE") and config is not None and config.store:
        explicit = config.store
    return Store.open(default_root(Path(explicit) if explicit is not None else None), repair=repair)


def open_store_here(
    explicit: Store | Path | str | None = None, directory: Path | str | None = None, *, repair: bool = False
) -> Store:
    """Open the store a build in ``directory`` (default cwd) would use: its ``.pipex.yml`` counts.

    With a remote cache configured there, missing objects are fetched from it when read.
    """
    from pipex.spec.config import find_config_file, load_config

    config = None
    root = Path(directory) if directory is not None else Path.cwd()
    if find_config_file(root) is not None:
        config = load_config(root)
    opened = open_store(explicit, config, repair=repair)
    # Objects of runs pulled lazily come from the remote when read (cat, export, logs).
    cache = open_remote(config)
    if cache is not None:
        opened.fetcher = cache.fetch_objects
    return opened


def condition_env(env_files: Sequence[Path | str] = ()) -> dict[str, str]:
    """What ``if:`` conditions see: the host environment overlaid with ``--env-file`` values."""
    from pipex.spec.envfile import merge_env_files

    return {**os.environ, **merge_env_files([Path(f) for f in env_files])}


def workspace_name(project: Project, explicit: str | None = None) -> str:
    """The workspace a build of ``project`` uses: ``explicit`` > ``.pipex.yml workspace`` > the pipeline id."""
    name = explicit or project.config.workspace or project.pipeline.id
    problem = workspace_name_problem(name)
    if problem is not None:
        raise UsageError(problem)
    return name


def check_workspace_root(store: Store, workspace: str, project: Project, *, explicit: bool) -> None:
    """Refuse a build that would reuse another project's workspace, unless it was named (adopted) explicitly."""
    recorded = store.workspace_project_root(workspace)
    root = project.pipeline.root.resolve()
    if recorded is not None and Path(recorded) != root and not explicit:
        msg = (
            f"workspace '{workspace}' belongs to the project at {recorded}, not {root}; "
            f"pass --workspace {workspace} to adopt it, or another name to keep both"
        )
        raise UsageError(msg)


def parse_force(project: Project, force: bool | str | Sequence[str] | None) -> bool | frozenset[str]:
    """``--force`` as the engine takes it: False, True (every step), or step ids (globs expanded; UsageError naming the closest)."""
    if force is None or force is False:
        return False
    if force is True:
        return True
    items = force.split(",") if isinstance(force, str) else list(force)
    ids = frozenset(i.strip() for i in items if i.strip())
    if not ids:
        return True
    from pipex.engine.graph import resolve_names

    return frozenset(resolve_names(project.pipeline, tuple(sorted(ids)), what="step to force"))


def executor_factory(config: Config | None) -> ExecutorFactory:
    """Make the local Docker executor on first need, with the project's network settings (CA bundle, proxies)."""

    def make() -> DockerExecutor:
        from pipex.executor.docker import DockerExecutor
        from pipex.executor.network import detect_network_config

        ca_bundle = config.ca_bundle if config is not None else None
        return DockerExecutor(network=detect_network_config(Path(ca_bundle) if ca_bundle else None))

    return make



def open_remote(
    config: Config | None,
    *,
    remote: str | None = None,
    pull: str | None = None,
    push: bool | None = None,
    warn: Callable[[str], None] | None = None,
) -> RemoteCache | None:
    """The remote cache a command uses (``.pipex.yml remote:``, ``PIPEX_REMOTE``, ``--remote``), or None.

    Nothing is imported or contacted here: boto3 comes with the first lookup.
    """
    from pipex.remote.config import remote_config

    settings = remote_config(config.remote if config else None, override=remote, pull=pull, push=push)
    if settings is None:
        return None
    from pipex.remote.cache import RemoteCache

    return RemoteCache(settings, warn=warn)
