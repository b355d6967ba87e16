"""Shared pieces of the store-reading commands: the --store option, opening the store, JSON, completion."""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any, Optional

import typer

STORE_HELP = "Store root (default: $PIPEX_STORE, .pipex.yml 'store', else the user cache dir)."


def open_store(store: Optional[Path], *, repair: bool = False) -> Any:
    """Open the store the way a build in the current directory would find it (``repair``: see ``Store.open``)."""
    from pipex import api

    return api.open_store_here(store, repair=repair)


def plain(value: Any) -> Any:
    """Dataclasses, enums and containers as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout."""
    typer.echo(json.dumps(plain(value), ensure_ascii=False, separators=(",", ":")))


def _store_of(ctx: typer.Context) -> Any:
    try:
        return open_store(ctx.params.get("store"))
    except Exception:  # completion must never print a traceback into the shell
        return None


def complete_workspace(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: workspace names of the store."""
    store = _store_of(ctx)
    if store is None:
        return []
    try:
        return [w for w in store.workspaces() if w.startswith(incomplete)]
    except Exception:
        return []


def complete_step(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: step names of the workspace given earlier on the line."""
    store = _store_of(ctx)
    workspace = ctx.params.get("workspace")
    if store is None or not workspace:
        return []
    try:
        steps = set(store.workspace_refs(workspace)) | set(store.workspace_refs(workspace, kind="failed"))
    except Exception:
        return []
    return sorted(s for s in steps if s.startswith(incomplete))


REMOTE_HELP = "Remote cache URL (s3://bucket/prefix), or off; default: .pipex.yml remote / PIPEX_REMOTE."
EXECUTOR_HELP = "Where steps run: local, dask or slurm (a cluster needs a remote); default: .pipex.yml executor / PIPEX_EXECUTOR."
SCHEDULER_HELP = "Dask scheduler address, tls://host:8786 (tcp:// only on loopback); implies --executor dask."
