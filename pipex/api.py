"""The Python API behind the CLI, one function per user verb; tests and other programs call it too.

A thin typed facade: each verb opens the project's store (``ops.project``)
and calls the operation's module under ``pipex.ops``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.ops.build import build, plan
from pipex.ops.k8s import k8s_manifests
from pipex.ops.remote import pull, push, remote_gc, remote_status, remote_verify
from pipex.ops.project import (
    Project,
    condition_env,
    load,
    open_store,
    open_store_here,
    workspace_name,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from pipex.events import Event
    from pipex.ops.browse import TreeItem, WorkspaceSummary, WorkspaceView
    from pipex.ops.exec import ExecResult
    from pipex.ops.detached import AttachResult
    from pipex.ops.record import BuildRecorder, BuildStatus
    from pipex.ops.workspaces import RemoveReport
    from pipex.store.gc import GcReport, PruneReport
    from pipex.store.runs import RunRecord
    from pipex.store.store import Store
    from pipex.store.verify import VerifyReport

__all__ = [
    "Project",
    "load",
    "open_store",
    "open_store_here",
    "workspace_name",
    "plan",
    "build",
    "push",
    "pull",
    "remote_status",
    "remote_gc",
    "remote_verify",
    "gc",
    "prune",
    "verify",
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
    "validate",
    "schema_text",
    "graph",
    "resolve_workspace",
    "project_workspaces",
    "log_paths",
    "follow_logs",
    "output_kind",
    "read_output",
    "list_output",
    "export_output",
    "detached_owner",
    "build_recorder",
    "start_detached",
    "parse_event",
    "recorded_events",
    "check_trace_path",
    "write_trace",
    "trace_json",
    "worker_run_job",
    "worker_check",
    "k8s_manifests",
    "worker_fetch",
    "worker_push_output",
]




def gc(
    store: Store | Path | str | None = None, *, dry_run: bool = False, progress: Callable[[str, int, int], None] | None = None
) -> GcReport:
    """Collect what no root references in the project's store (see ``open_store_here``); return the GcReport.

    ``progress(phase, done, total)`` is called as the sweep goes.
    """
    from pipex.store.gc import gc as collect

    return collect(open_store_here(store), dry_run=dry_run, progress=progress)


def prune(workspace: str, *, store: Store | Path | str | None = None, dry_run: bool = False) -> PruneReport:
    """Drop ``workspace``'s old runs (the current one per step stays), then collect."""
    from pipex.store.gc import prune as prune_store

    return prune_store(open_store_here(store), workspace, dry_run=dry_run)


def verify(*, store: Store | Path | str | None = None, repair: bool = False) -> VerifyReport:
    """Re-hash every object and check trees, runs and refs; ``repair`` quarantines what is damaged."""
    from pipex.store.verify import verify as check

    return check(open_store_here(store, repair=repair), repair=repair)


# -- the spec -----------------------------------------------------------------------------


def validate(path: Path | str | None = None, *, env_files: Sequence[Path | str] = ()) -> tuple[int, str]:
    """Check a pipeline file (schema, kits, ids, inputs, cycles, paths); return (step count, the file as shown)."""
    from pipex.spec.document import display_path
    from pipex.spec.load import load_pipeline

    loaded = load_pipeline(Path(path) if path is not None else None, env_files=env_files)
    return len(loaded.steps), display_path(loaded.file)


def schema_text(*, config: bool = False) -> str:
    """The JSON Schema of pipeline files (``config``: of ``.pipex.yml``)."""
    from pipex.spec.schemas import CONFIG_SCHEMA, PIPELINE_SCHEMA, schema_bytes

    return schema_bytes(CONFIG_SCHEMA if config else PIPELINE_SCHEMA).decode("utf-8")


def graph(
    path: Path | str | None = None,
    *,
    targets: Sequence[str] = (),
    fmt: str = "mermaid",
    with_status: bool = True,
    workspace: str | None = None,
    env_files: Sequence[Path | str] = (),
    store: Store | Path | str | None = None,
    offline: bool = False,
) -> str:
    """The step DAG of ``targets`` as mermaid, dot or text; ``with_status`` plans first and styles each step by its status.

    A bad format is refused before the store is opened.
    """
    from pipex.engine.graph import FORMATS, render, select, topo_order
    from pipex.errors import UsageError

    if fmt not in FORMATS:
        msg = f"unknown graph format '{fmt}' (expected one of: {', '.join(FORMATS)})"
        raise UsageError(msg)
    project = load(path, env_files=env_files)
    _, selected = select(project.pipeline, list(targets))
    statuses: dict[str, str] = {}
    if with_status:
        the_plan = plan(
            path, targets=targets, workspace=workspace, env_files=env_files, store=store, offline=offline, project=project
        )
        statuses = {s.step_id: s.status.value for s in the_plan.steps}
    return render(project.pipeline, topo_order(project.pipeline, selected), statuses, fmt=fmt)


# -- workspaces and their results ------------------------------------------------------------


def resolve_workspace(workspace: str | None, *, store: Store | Path | str | None = None) -> str:
    """``workspace`` if the store has it, else the only workspace of the current directory (UsageError otherwise)."""
    from pipex.ops.workspaces import resolve_workspace as resolve

    return resolve(open_store_here(store), workspace)


def project_workspaces(project_root: Path | str, *, store: Store | Path | str | None = None) -> list[str]:
    """The workspaces whose project root is ``project_root`` or inside it."""
    from pipex.ops.workspaces import project_workspaces as mine

    return mine(open_store_here(store), Path(project_root))


def log_paths(record: RunRecord, stream: str) -> list[tuple[str, Path]]:
    """A recorded run's log files: ``stdout``, ``stderr`` or ``both``."""
    from pipex.ops import browse

    return browse.log_paths(record, stream)


def follow_logs(workspace: str, step: str, stream: str = "both", *, store: Store | Path | str | None = None) -> Iterator[tuple[str, bytes]]:
    """A running step's output as it grows, then the rest of its recorded run (``logs --follow``)."""
    from pipex.ops.follow import follow_logs as follow

    return follow(open_store_here(store), workspace, step, stream)


def output_kind(tree_id: str, path: str, *, store: Store | Path | str | None = None) -> str:
    """``file``, ``dir`` or ``link`` for ``path`` in an output tree (links resolved inside the output only)."""
    from pipex.ops import browse

    return browse.kind_of(open_store_here(store), tree_id, path)


def read_output(tree_id: str, path: str, *, store: Store | Path | str | None = None) -> Iterator[bytes]:
    """The bytes of a file of an output tree, in chunks."""
    from pipex.ops import browse

    return browse.read_file(open_store_here(store), tree_id, path)


def list_output(tree_id: str, path: str = "", *, store: Store | Path | str | None = None) -> list[TreeItem]:
    """The entries of an output tree under ``path``."""
    from pipex.ops import browse

    return browse.list_tree(open_store_here(store), tree_id, path)


def export_output(tree_id: str, dest: Path, *, store: Store | Path | str | None = None) -> None:
    """Copy an output tree to ``dest`` (refused when a link would leave it)."""
    from pipex.ops import browse

    browse.export(open_store_here(store), tree_id, dest)


def show(workspace: str | None = None, *, store: Store | Path | str | None = None) -> WorkspaceView:
    """A workspace's steps with their latest runs."""
    from pipex.ops import browse

    return browse.show(open_store_here(store), workspace)


def list_workspaces(*, store: Store | Path | str | None = None) -> list[WorkspaceSummary]:
    """Every workspace of the store with sizes."""
    from pipex.ops import browse

    return browse.list_workspaces(open_store_here(store))


def find_run(
    workspace: str | None, step: str, run: str | None = None, *, store: Store | Path | str | None = None, succeeded: bool = False
) -> RunRecord:
    """The RunRecord of a step: ``run`` (id or prefix), else its latest (``succeeded``: current) run."""
    from pipex.ops import browse

    return browse.find_run(open_store_here(store), workspace, step, run, succeeded=succeeded)


def remove_workspaces(workspaces: Sequence[str], *, store: Store | Path | str | None = None) -> RemoveReport:
    """Remove workspaces; refused (nothing removed) while a live build holds any of them."""
    from pipex.ops.workspaces import remove_workspaces as remove

    return remove(open_store_here(store), workspaces)


def remove_step(workspace: str, step: str, *, store: Store | Path | str | None = None) -> RemoveReport:
    """Drop one step's refs from a workspace; refused while a live build holds it."""
    from pipex.ops.workspaces import remove_step as remove

    return remove(open_store_here(store), workspace, step)


def clean(*, store: Store | Path | str | None = None, collect: bool = True, project_root: Path | str | None = None) -> RemoveReport:
    """Remove the workspaces of ``project_root`` (None: all of the store), then gc; refused while a live build holds one."""
    from pipex.ops.workspaces import clean as clean_store

    root = Path(project_root) if project_root is not None else None
    return clean_store(open_store_here(store), collect=collect, project_root=root)


def exec_step(file: Path | str, workspace: str | None = None, **options: Any) -> ExecResult:
    """Run one step from ``file`` against ``workspace``'s current runs (see ``pipex.ops.exec``)."""
    from pipex.ops.exec import exec_step as run_one

    return run_one(file, workspace, **options)


def attach(
    workspace: str | None = None, on_line: Callable[[str], None] = print, *, store: Store | Path | str | None = None
) -> AttachResult:
    """Replay the workspace's latest build log and follow it to the end; return its ``AttachResult``."""
    from pipex.ops import detached
    from pipex.ops.workspaces import resolve_workspace

    the_store = open_store_here(store)
    return detached.attach(the_store, resolve_workspace(the_store, workspace), on_line)


def cancel(workspace: str | None = None, *, store: Store | Path | str | None = None) -> int:
    """Stop the live build of ``workspace`` (SIGTERM) and wait; return its recorded exit code (130)."""
    from pipex.ops import detached
    from pipex.ops.workspaces import resolve_workspace

    the_store = open_store_here(store)
    return detached.cancel(the_store, resolve_workspace(the_store, workspace))


# -- a build's record: detached builds, attach, timelines -------------------------------------


def detached_owner() -> tuple[Path, str] | None:
    """(store root, workspace) when this process is a detached build started by ``build --detach``."""
    from pipex.ops.record import detached_owner as owner

    return owner()


def build_recorder(workspace: str, *, store: Store | Path | str | None = None, owner: bool = False) -> BuildRecorder:
    """An event sink that records a build of ``workspace`` (``build.ndjson``, ``build.json``)."""
    from pipex.ops.record import BuildRecorder

    return BuildRecorder(open_store_here(store), workspace, owner=owner)


def start_detached(workspace: str, argv: list[str], *, store: Store | Path | str | None = None) -> BuildStatus:
    """Start ``pipex build`` ``argv`` in the background for ``workspace``; refused while a live build holds it."""
    from pipex.ops.detached import start_detached as start

    return start(open_store_here(store), workspace, argv)


def parse_event(line: str) -> Event | None:
    """A recorded NDJSON event line as an Event (None for a line that is not one)."""
    from pipex.ops.record import parse_event as parse

    return parse(line)


def recorded_events(workspace: str, *, store: Store | Path | str | None = None) -> list[Event]:
    """The events of the workspace's latest recorded build."""
    from pipex.ops.record import read_events

    return read_events(open_store_here(store), workspace)


def check_trace_path(path: Path | str) -> None:
    """Refuse a ``--profile`` path that cannot be written, before a build runs."""
    from pipex.ops.timeline import check_trace_path as check

    check(path)


def write_trace(events: Iterable[Event], path: Path | str) -> None:
    """Write build events as a Chrome trace-event file (open it in Perfetto)."""
    from pipex.ops.timeline import write_trace as write

    write(events, path)


def trace_json(events: Iterable[Event]) -> str:
    """Build events as Chrome trace-event JSON."""
    from pipex.ops.timeline import to_json

    return to_json(events)


# -- cluster workers ---------------------------------------------------------------------------


def worker_run_job(job: str, *, endpoint: str | None = None, region: str | None = None) -> dict[str, Any]:
    """Run one worker job (a JSON file or an s3:// key) on this machine; return its answer (``JobResult`` data)."""
    from pipex.ops.worker_cli import run_job_command

    return run_job_command(job, endpoint=endpoint, region=region)


def worker_check(*, remote: str | None = None, images: Sequence[str] = (), endpoint: str | None = None) -> Any:
    """Check this machine can run step jobs (Docker, pipex version, store, remote, images); a ``WorkerCheck``."""
    from pipex.ops.worker_cli import worker_check as check

    return check(remote=remote, images=images, endpoint=endpoint)


def worker_fetch(job: Path | str, into: Path | str) -> int:
    """Lay a worker job's inputs and mounted paths out under ``into`` (``pipex worker fetch``); how many trees."""
    from pipex.ops.worker_k8s import fetch_job

    return fetch_job(Path(job), Path(into))


def worker_push_output(job: Path | str, output: Path | str, status: Path | str) -> dict[str, Any]:
    """Record and push a step's output once its exit code is in ``status`` (``pipex worker push-output``)."""
    from pipex.ops.worker_k8s import push_output

    return push_output(Path(job), Path(output), Path(status))
