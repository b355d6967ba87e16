"""CLI commands that remove workspaces or steps: rm, rm-step, clean (each refused while a build holds them)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import STORE_HELP, complete_step, complete_workspace, echo_json, open_store


@app.command("rm")
def rm_command(
    workspaces: List[str] = typer.Argument(..., help="Workspaces to remove.", autocompletion=complete_workspace),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Remove workspaces (their refs, caches and build log); their runs go at the next gc."""
    from pipex import api

    report = api.remove_workspaces(workspaces, store=open_store(store))
    if json_output:
        echo_json(report)
        return
    for name in report.workspaces:
        typer.echo(f"removed workspace {name}")
    typer.echo("run 'pipex gc' to free the space of runs nothing references any more")


@app.command("rm-step")
def rm_step_command(
    workspace: str = typer.Argument(..., help="Workspace.", autocompletion=complete_workspace),
    step: str = typer.Argument(..., help="Step whose refs to drop.", autocompletion=complete_step),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Forget a step's current and failed run in a workspace (the runs stay until gc)."""
    from pipex import api

    report = api.remove_step(workspace, step, store=open_store(store))
    if json_output:
        echo_json(report)
        return
    typer.echo(f"removed step {step} from workspace {workspace} ({len(report.refs)} refs)")


@app.command("clean")
def clean_command(
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    collect: bool = typer.Option(True, "--gc/--no-gc", help="Collect garbage afterwards (default)."),
    everything: bool = typer.Option(False, "--all", help="Every workspace of the store, of every project."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_output: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Remove this project's workspaces (--all: every workspace of the store), then collect garbage.

    Asks first on a terminal; without one, --yes is required.
    """
    import sys

    from pipex import api
    from pipex.cli.store_cmds import _gc_line
    from pipex.errors import UsageError
    opened = open_store(store)
    here = Path.cwd()
    names = opened.workspaces() if everything else api.project_workspaces(here, store=opened)
    if names and not yes:
        scope = f"the store at {opened.root}" if everything else f"the store at {opened.root} (the project at {here.resolve()})"
        if not sys.stdin.isatty():
            msg = f"clean would remove {len(names)} workspaces ({', '.join(names)}) from {scope}; pass --yes to confirm without a terminal"
            raise UsageError(msg)
        typer.confirm(f"remove {len(names)} workspaces ({', '.join(names)}) from {scope}?", abort=True)
    report = api.clean(store=opened, collect=collect, project_root=None if everything else here)
    if json_output:
        echo_json(report)
        return
    typer.echo(f"removed {len(report.workspaces)} workspaces" + (f": {', '.join(report.workspaces)}" if report.workspaces else ""))
    if report.gc is not None:
        typer.echo(_gc_line(report.gc))
