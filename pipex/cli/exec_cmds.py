"""CLI command: exec (one step from a file against a workspace's existing runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import STORE_HELP, complete_step, complete_workspace, echo_json, open_store


@app.command("exec")
def exec_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace whose runs feed the step (default: the one of this directory).", autocompletion=complete_workspace),
    file: Path = typer.Option(..., "-f", "--file", help="A step file (one step) or a pipeline file (pick with --step)."),
    step: Optional[str] = typer.Option(None, "--step", help="The step of a pipeline file to run."),
    inputs: List[str] = typer.Option(
        [], "--input", "-i", help="[ALIAS=]STEP: mount the workspace's STEP output at /input/ALIAS (repeatable).",
        autocompletion=complete_step,
    ),
    ephemeral: bool = typer.Option(False, "--ephemeral", help="Stream the output and keep nothing (no run, no ref)."),
    force: bool = typer.Option(False, "--force", help="Run even if a run with the same fingerprint exists."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the step's output live."),
    env_file: List[Path] = typer.Option([], "--env-file", help="dotenv file for the step's env (repeatable)."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="NDJSON events, then the result, on stdout."),
) -> None:
    """Run one step from a file against a workspace's current runs; exit 1 if it fails."""
    from pipex import api
    from pipex.cli.render import make_renderer

    renderer = make_renderer(json_output=json_output, verbose=False, quiet=ephemeral)

    def on_output(step_id: str, stream: str, line: str) -> None:
        if json_output:
            return
        out = sys.stdout if stream == "stdout" and ephemeral else sys.stderr
        prefix = "" if ephemeral else f"[{step_id}] "
        out.write(f"{prefix}{line}\n")
        out.flush()

    try:
        result = api.exec_step(
            file, workspace, step_id=step, inputs=inputs, ephemeral=ephemeral, force=force,
            verbose=verbose, env_files=env_file, store=open_store(store), sink=renderer,
            on_output=on_output if (ephemeral or verbose) else None,
        )
    finally:
        close = getattr(renderer, "close", None)
        if close is not None:
            close()
    if json_output:
        echo_json({"event": "EXEC_RESULT", **{k: v for k, v in vars(result).items()}})
    elif ephemeral and not result.ok:
        typer.echo(f"pipex: step '{result.step}' failed: {result.reason}", err=True)
    if not result.ok:
        raise typer.Exit(1)
