"""CLI commands: build (alias run for the original pipex form)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pipex.cli import app

_FILE_HELP = "Pipeline file, or a directory holding pipeline.yml/.yaml/.json (default: cwd)."
_FORCE_HELP = "Ignore the cache: alone for every step, or --force=a,b for those steps."


def _run_build(
    pipeline: Optional[Path],
    targets: List[str],
    *,
    workspace: Optional[str],
    force: Optional[str],
    dry_run: bool,
    verbose: bool,
    quiet: bool,
    concurrency: Optional[int],
    env_file: List[Path],
    keep_going: bool,
    json_output: bool,
    store: Optional[Path],
    offline: bool,
) -> None:
    from pipex import api
    from pipex.report import make_renderer

    force_value: bool | str = True if force == "*" else (force or False)
    if dry_run:
        from pipex.plan_cli import render_plan

        the_plan = api.plan(
            pipeline, targets=targets, workspace=workspace, force=force_value,
            env_files=env_file, store=store, offline=offline,
        )
        render_plan(the_plan, json_output=json_output)
        return
    sink = make_renderer(json_output=json_output, verbose=verbose, quiet=quiet)
    try:
        result = api.build(
            pipeline,
            targets=targets,
            workspace=workspace,
            force=force_value,
            env_files=env_file,
            store=store,
            concurrency=concurrency,
            keep_going=keep_going,
            verbose=verbose,
            offline=offline,
            sink=sink,
        )
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    if not result.ok:
        raise typer.Exit(1)


@app.command("build")
def build(
    targets: List[str] = typer.Argument(None, help="Step ids or globs to build (default: every leaf step)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    target: List[str] = typer.Option([], "-t", "--target", help="A target (repeatable); same as a positional one."),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace name (default: the pipeline id)."),
    force: Optional[str] = typer.Option(None, "--force", help=_FORCE_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the plan; run nothing."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print step output live, prefixed by step id."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures."),
    concurrency: Optional[int] = typer.Option(None, "-j", "--concurrency", min=1, help="Parallel steps (default: CPU count)."),
    env_file: List[Path] = typer.Option([], "--env-file", help="dotenv file for every step's env (repeatable)."),
    keep_going: bool = typer.Option(False, "--keep-going", "-k", help="Keep building independent steps after a failure."),
    json_output: bool = typer.Option(False, "--json", help="NDJSON events on stdout."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help="Store root."),
    offline: bool = typer.Option(False, "--offline", help="Trust recorded image ids; do not ask Docker for tags."),
) -> None:
    """Build targets and what they need, like make; unchanged steps come from the store."""
    _run_build(
        file, list(targets or []) + list(target), workspace=workspace, force=force, dry_run=dry_run,
        verbose=verbose, quiet=quiet, concurrency=concurrency, env_file=env_file,
        keep_going=keep_going, json_output=json_output, store=store, offline=offline,
    )


@app.command("run")
def run(
    pipeline: Optional[Path] = typer.Argument(None, help=_FILE_HELP),
    force: Optional[str] = typer.Option(None, "-f", "--force", help=_FORCE_HELP),
    concurrency: Optional[int] = typer.Option(None, "-c", "-j", "--concurrency", min=1, help="Parallel steps."),
    target: List[str] = typer.Option([], "-t", "--target", help="A target (repeatable)."),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace name (default: the pipeline id)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the plan; run nothing."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print step output live."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures."),
    env_file: List[Path] = typer.Option([], "--env-file", help="dotenv file for every step's env (repeatable)."),
    keep_going: bool = typer.Option(False, "--keep-going", "-k", help="Keep building after a failure."),
    json_output: bool = typer.Option(False, "--json", help="NDJSON events on stdout."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help="Store root."),
    offline: bool = typer.Option(False, "--offline", help="Trust recorded image ids."),
) -> None:
    """Run a pipeline the original pipex way: `pipex run [PIPELINE] [-f] [-c N]`."""
    _run_build(
        pipeline, list(target), workspace=workspace, force=force, dry_run=dry_run, verbose=verbose,
        quiet=quiet, concurrency=concurrency, env_file=env_file, keep_going=keep_going,
        json_output=json_output, store=store, offline=offline,
    )
