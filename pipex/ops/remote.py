"""``pipex push``, ``pipex pull`` and ``pipex remote status``: a workspace's runs to and from the remote cache."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.errors import RemoteDeniedError, RemoteError, UsageError
from pipex.ops.project import Project, load, open_remote, open_store, workspace_name

if TYPE_CHECKING:
    from pipex.remote.cache import RemoteCache
    from pipex.remote.push import PushResult
    from pipex.remote.upkeep import RemoteGcReport, RemoteVerifyReport
    from pipex.store.store import Store

__all__ = ["push", "pull", "remote_status", "remote_gc", "remote_verify", "PullReport", "RemoteStatus"]


def _remote(project: Project, remote: str | None) -> RemoteCache:
    """The project's remote, required: these commands have nothing to do without one."""
    cache = open_remote(project.config, remote=remote)
    if cache is None:
        msg = "no remote cache configured: set remote: in .pipex.yml, PIPEX_REMOTE or --remote s3://bucket/prefix"
        raise UsageError(msg)
    return cache


def push(
    path: Path | str | None = None,
    *,
    workspace: str | None = None,
    steps: Sequence[str] = (),
    store: Store | Path | str | None = None,
    remote: str | None = None,
) -> list[PushResult]:
    """Push the workspace's successful runs (``steps``: ids or globs; default all) that the remote lacks.

    Unlike a build's push, a refusal here is the command's error (exit 2).
    """
    from pipex.remote.push import push_run

    project = load(path)
    cache = _remote(project, remote)
    opened = open_store(store, project.config)
    opened.fetcher = cache.fetch_objects
    name = workspace_name(project, workspace)
    refs = opened.workspace_refs(name)
    chosen = sorted(s for s in refs if not steps or any(fnmatch.fnmatchcase(s, p) for p in steps))
    if steps and not chosen:
        msg = f"no step of workspace '{name}' matches {', '.join(steps)} (it has: {', '.join(sorted(refs)) or 'none'})"
        raise UsageError(msg)
    results: list[PushResult] = []
    for step_id in chosen:
        if not cache.config.pushes(step_id):
            continue
        record = opened.read_run(refs[step_id])
        if not record.meta.succeeded or record.meta.fingerprint != record.run_id:
            continue
        results.append(push_run(cache, opened, record))
    return results


@dataclass
class PullReport:
    """What ``pipex pull`` did: steps now cached here from the remote, objects fetched, steps the remote lacks."""

    pulled: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    objects: int = 0
    warnings: list[str] = field(default_factory=list)


def pull(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    workspace: str | None = None,
    objects: bool = False,
    store: Store | Path | str | None = None,
    remote: str | None = None,
) -> PullReport:
    """Adopt the remote's runs of the targets' steps into the workspace (``objects``: their bytes too)."""
    from pipex.engine.plan import Planner, StepStatus

    project = load(path)
    cache = _remote(project, remote)
    opened = open_store(store, project.config)
    opened.fetcher = cache.fetch_objects
    name = workspace_name(project, workspace)
    report = PullReport()
    with opened.shared_lock():
        opened.create_workspace(name, project.pipeline.root.resolve())
        the_plan = Planner(project.pipeline, opened, workspace=name, remote=cache).plan(tuple(targets))
        for decided in the_plan.steps:
            if decided.status is not StepStatus.CACHED or decided.run_id is None:
                report.missing.append(decided.step_id)
                continue
            if decided.source == "remote" and cache.adopt(opened, decided.run_id) is None:
                report.missing.append(decided.step_id)
                continue
            (report.pulled if decided.source == "remote" else report.local).append(decided.step_id)
            opened.set_ref(name, decided.step_id, decided.run_id)
            if objects and decided.output_tree:
                tree = opened.read_tree(decided.output_tree)
                before = sum(1 for e in tree.entries if e.oid and not opened.objects.present(e.oid, e.executable, e.size))
                opened.ensure_objects(tree)
                report.objects += before
    report.warnings.extend(cache.warnings)
    return report


@dataclass(frozen=True)
class RemoteStatus:
    """Whether the remote answers and what these credentials may do there."""

    url: str
    endpoint: str | None
    reachable: bool
    can_read: bool
    can_write: bool
    runs: int | None
    identity: str | None
    error: str | None = None


def remote_status(path: Path | str | None = None, *, remote: str | None = None) -> RemoteStatus:
    """Ask the remote: reachable, readable, writable (a probe key written and deleted), how many runs."""
    project = load(path)
    cache = _remote(project, remote)
    blobs = cache.blobs
    identity = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or cache.config.profile
    base: dict[str, Any] = {"url": cache.config.url, "endpoint": cache.config.endpoint, "identity": identity}
    try:
        cache.check_format()
        runs = sum(1 for _ in blobs.list_keys("runs/"))
    except RemoteError as error:
        return RemoteStatus(**base, reachable=False, can_read=False, can_write=False, runs=None, error=str(error))
    probe = f"probes/{os.urandom(8).hex()}"
    try:
        blobs.put(probe, b"pipex remote status probe\n")
        blobs.delete([probe])
        can_write = True
    except RemoteDeniedError:
        can_write = False
    except RemoteError as error:
        return RemoteStatus(**base, reachable=True, can_read=True, can_write=False, runs=runs, error=str(error))
    return RemoteStatus(**base, reachable=True, can_read=True, can_write=can_write, runs=runs)


def remote_gc(
    path: Path | str | None = None,
    *,
    older_than: str = "30d",
    grace: str = "24h",
    dry_run: bool = False,
    remote: str | None = None,
) -> RemoteGcReport:
    """Delete records older than ``older_than`` and what no record names, past ``grace`` (``pipex.remote.upkeep``)."""
    from pipex.remote import upkeep

    cache = _remote(load(path), remote)
    return upkeep.remote_gc(
        cache,
        older_than=upkeep.parse_duration(older_than, "--older-than"),
        grace=upkeep.parse_duration(grace, "--grace"),
        dry_run=dry_run,
    )


def remote_verify(path: Path | str | None = None, *, sample: int = 0, remote: str | None = None) -> RemoteVerifyReport:
    """Check every record, tree and object size on the remote, and hash ``sample`` objects."""
    from pipex.remote import upkeep

    return upkeep.remote_verify(_remote(load(path), remote), sample=sample)
