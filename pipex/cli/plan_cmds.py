"""CLI commands: plan, graph (renderers live in pipex.cli.fast_plan so a no-op plan needs no typer)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import REMOTE_HELP
from pipex.cli.fast_plan import plan_lines, render_plan, run_plan

__all__ = ["render_plan", "plan_lines"]

_FILE_HELP = "Pipeline file, or a directory holding pipeline.yml/.yaml/.json (default: cwd)."
_FORCE_HELP = "Ignore the cache: alone for every step, or --force=a,b for those steps."


@app.command("plan")
def plan(
    targets: List[str] = typer.Argument(None, help="Step ids or globs (default: every leaf step)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    target: List[str] = typer.Option([], "-t", "--target", help="A target (repeatable); same as a positional one."),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace name (default: the pipeline id)."),
    force: Optional[str] = typer.Option(None, "--force", help=_FORCE_HELP),
    env_file: List[Path] = typer.Option([], "--env-file", help="dotenv file for every step's env (repeatable)."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help="Store root."),
    offline: bool = typer.Option(False, "--offline", help="Trust recorded image ids; do not ask Docker about tags."),
    json_output: bool = typer.Option(False, "--json", help="Print the plan as one JSON document."),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    pull: Optional[str] = typer.Option(None, "--pull", help="lazy or eager: look hits up in the remote; off: do not."),
) -> None:
    """Say what a build would run and why; run nothing, change nothing in the store (nor the remote)."""
    code = run_plan(
        file=str(file) if file else None,
        targets=list(targets or []) + list(target),
        workspace=workspace,
        force=True if force == "*" else (force or False),
        env_files=[str(f) for f in env_file],
        store=str(store) if store else None,
        offline=offline,
        json_output=json_output,
        remote=remote,
        pull=pull,
    )
    if code:
        raise typer.Exit(code)


@app.command("graph")
def graph(
    targets: List[str] = typer.Argument(None, help="Step ids or globs (default: every leaf step)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    fmt: str = typer.Option("mermaid", "--format", help="mermaid, dot or text."),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace name (default: the pipeline id)."),
    env_file: List[Path] = typer.Option([], "--env-file", help="dotenv file for every step's env (repeatable)."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help="Store root."),
    offline: bool = typer.Option(False, "--offline", help="Trust recorded image ids; do not ask Docker about tags."),
    plain: bool = typer.Option(False, "--no-status", help="Draw the DAG only; do not plan (no store, no Docker)."),
) -> None:
    """Print the step DAG (mermaid or dot); cached, stale, pending and skipped steps styled apart."""
    from pipex import api

    text = api.graph(
        file, targets=list(targets or []), fmt=fmt, with_status=not plain,
        workspace=workspace, env_files=env_file, store=store, offline=offline,
    )
    typer.echo(text, nl=False)
