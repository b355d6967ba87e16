"""CLI commands: worker run-job, worker check (what a cluster worker runs)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pipex.cli._common import echo_json
from pipex.cli.main import app

worker_app = typer.Typer(help="What a cluster worker runs: run-job (one step job), check (can this machine run them).", no_args_is_help=True)
app.add_typer(worker_app, name="worker")


@worker_app.command("run-job")
def run_job(
    job: str = typer.Argument(..., help="A worker job: a JSON file, or the s3://…/jobs/<build>/<key>.json key SLURM is given."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="The remote's S3 endpoint (for an s3:// job)."),
    region: Optional[str] = typer.Option(None, "--region", help="The remote's region (for an s3:// job)."),
) -> None:
    """Run one step job on this machine's Docker engine, from the remote cache to the remote cache; print its answer.

    Example: pipex worker run-job job.json
    """
    from pipex import api

    answer = api.worker_run_job(job, endpoint=endpoint, region=region)
    echo_json(answer)
    if answer.get("status") not in ("ran", "cached"):
        raise typer.Exit(1)


@worker_app.command("check")
def check(
    remote: Optional[str] = typer.Option(None, "--remote", help="The remote to reach (default: PIPEX_REMOTE)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="The remote's S3 endpoint."),
    image: List[str] = typer.Option([], "--image", help="An image steps will need (repeatable)."),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Check this machine can run step jobs: Docker answers, pipex version, store, remote, images; exit 1 if not.

    Example: pipex worker check --remote s3://team-cache/pipex --image python:3.12-slim
    """
    from pipex import api

    report = api.worker_check(remote=remote, images=image, endpoint=endpoint)
    if json_output:
        echo_json(report.to_dict())
    else:
        for name, (ok, detail) in report.checks.items():
            typer.echo(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not report.ok:
        raise typer.Exit(1)
