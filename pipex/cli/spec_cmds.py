"""CLI commands: validate, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from pipex.cli.main import app

__all__ = ["validate", "schema"]


@app.command()
def validate(
    pipeline: Optional[Path] = typer.Argument(None, help="Pipeline file or directory (default: the current directory)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Pipeline file (or directory) to check."),
    env_file: list[Path] = typer.Option([], "--env-file", help="Dotenv file applied to every step (repeatable)."),
) -> None:
    """Check a pipeline file: schema, kits, ids, inputs, cycles, paths. Exit 2 on errors."""
    from pipex import api

    if pipeline is not None and file is not None:
        from pipex.errors import UsageError

        msg = "give the pipeline either as an argument or with -f, not both"
        raise UsageError(msg)
    count, shown = api.validate(file or pipeline, env_files=env_file)
    typer.echo(f"ok: {count} step{'s' if count != 1 else ''} in {shown}")


@app.command()
def schema(
    config: bool = typer.Option(False, "--config", help="Print the .pipex.yml schema instead of the pipeline schema."),
) -> None:
    """Print the JSON Schema of pipeline files (or of .pipex.yml) for editors."""
    from pipex import api

    text = api.schema_text(config=config)
    sys.stdout.write(text)
    if not text.endswith("\n"):
        sys.stdout.write("\n")
