"""CLI commands for a build running elsewhere: attach (replay + follow, its exit code) and cancel."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import STORE_HELP, complete_workspace, echo_json, open_store


@app.command("attach")
def attach_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace (default: the one of this directory).", autocompletion=complete_workspace),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show step output (when the build recorded it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="The build's NDJSON events on stdout."),
) -> None:
    """Show a build of WORKSPACE from its start, follow it to the end, exit with its exit code."""
    from pipex import api
    from pipex.cli.render import make_renderer

    opened = open_store(store)
    name = api.resolve_workspace(workspace, store=opened)
    on_line: Callable[[str], None]
    if json_output:
        on_line = typer.echo
        close = None
    else:
        renderer = make_renderer(json_output=False, verbose=verbose, quiet=quiet)
        close = getattr(renderer, "close", None)

        def on_line(line: str) -> None:
            event = api.parse_event(line)
            if event is not None:
                renderer(event)

    try:
        result = api.attach(name, on_line, store=opened)
    finally:
        if close is not None:
            close()
    for line in result.errors:
        typer.echo(line if line.startswith("pipex:") else f"pipex: {line}", err=True)
    raise typer.Exit(result.exit_code)


@app.command("cancel")
def cancel_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace (default: the one of this directory).", autocompletion=complete_workspace),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Stop the running build of WORKSPACE cleanly: its containers are removed, finished steps kept."""
    from pipex import api

    opened = open_store(store)
    name = api.resolve_workspace(workspace, store=opened)
    code = api.cancel(name, store=opened)
    if json_output:
        echo_json({"workspace": name, "cancelled": True, "exitCode": code})
    else:
        typer.echo(f"cancelled the build of workspace {name} (it exited with {code})")
