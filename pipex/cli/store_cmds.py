"""CLI commands: gc, prune, verify."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import STORE_HELP as _STORE_HELP
from pipex.cli._common import open_store as _open
from pipex.cli._common import plain
from pipex.errors import LockBusyError
from pipex.cli.render import format_size

@contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar for gc's phases on a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty() or os.environ.get("NO_COLOR") is not None:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _wait_for_builds(store: Any) -> None:
    # gc and repair need the store to themselves; say why we sit there.
    try:
        with store.exclusive_lock(blocking=False):
            return
    except LockBusyError:
        typer.echo("pipex: waiting for running builds to finish…", err=True)


def _gc_line(report: Any) -> str:
    verb = "would remove" if report.dry_run else "removed"
    return (
        f"{verb} {report.runs} runs, {report.trees} trees, {report.objects} objects, "
        f"{report.checkouts} checkouts ({format_size(report.bytes)}); "
        f"kept {report.kept_runs} runs, {report.kept_trees} trees, {report.kept_objects} objects"
    )


@app.command("gc")
def gc_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be removed; remove nothing."),
    store: Optional[Path] = typer.Option(None, "--store", help=_STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Delete runs, trees, objects and checkouts that no workspace ref or pin reaches."""
    from pipex import api

    opened = _open(store)
    if not dry_run:
        _wait_for_builds(opened)
    with _progress_bar(enabled=not json_output) as progress:
        report = api.gc(opened, dry_run=dry_run, progress=progress)
    typer.echo(json.dumps(plain(report)) if json_output else _gc_line(report))


@app.command("prune")
def prune_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace to prune (default: the one of this directory)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be removed; remove nothing."),
    store: Optional[Path] = typer.Option(None, "--store", help=_STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Keep only a workspace's current run per step (drop failed runs), then collect garbage."""
    from pipex import api

    opened = _open(store)
    workspace = api.resolve_workspace(workspace, store=opened)
    if not dry_run:
        _wait_for_builds(opened)
    report = api.prune(workspace, store=opened, dry_run=dry_run)
    if json_output:
        typer.echo(json.dumps(plain(report)))
        return
    verb = "would drop" if dry_run else "dropped"
    typer.echo(f"{workspace}: {verb} {report.refs_dropped} old refs; {_gc_line(report.gc)}")


@app.command("verify")
def verify_command(
    repair: bool = typer.Option(False, "--repair", help="Quarantine damage and drop the runs that need it."),
    store: Optional[Path] = typer.Option(None, "--store", help=_STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-hash every object and check every tree, run and ref; exit 1 if anything is damaged."""
    from pipex import api

    opened = _open(store, repair=repair)
    if repair:
        _wait_for_builds(opened)
    report = api.verify(store=opened, repair=repair)
    if json_output:
        typer.echo(json.dumps({**plain(report), "ok": report.ok}))
    else:
        for problem in report.problems:
            typer.echo(f"{problem.kind.value}: {problem.name}: {problem.detail}")
        typer.echo(
            f"checked {report.objects} objects ({format_size(report.bytes)}), {report.trees} trees, "
            f"{report.runs} runs, {report.refs} refs: "
            + ("no damage" if report.ok else f"{len(report.problems)} problems")
            + (f"; {report.not_fetched} objects of pulled runs not fetched (on the remote)" if report.not_fetched else "")
        )
        if report.repaired:
            typer.echo(
                f"repaired: quarantined {report.quarantined}, dropped {report.runs_dropped} runs, "
                f"{report.refs_dropped} refs, {report.trees_dropped} trees; the next build re-runs those steps"
            )
    if not report.ok:
        raise typer.Exit(1)
