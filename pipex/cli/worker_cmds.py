"""CLI commands: worker run-job, fetch, push-output, check (what a cluster worker runs); k8s manifests."""

from __future__ import annotations

from pathlib import Path
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


@worker_app.command("fetch")
def fetch(
    job: Path = typer.Argument(..., help="The worker job (JSON file)."),
    into: Path = typer.Option(..., "--into", help="Where input/<step>/ and project/<host> are laid out."),
) -> None:
    """Fetch a job's input trees and mounted project paths from the remote (a Kubernetes pod's init container)."""
    from pipex import api

    typer.echo(f"fetched {api.worker_fetch(job, into)} trees into {into}")


@worker_app.command("push-output")
def push_output(
    job: Path = typer.Argument(..., help="The worker job (JSON file)."),
    output: Path = typer.Option(..., "--output", help="The step's output directory."),
    status: Path = typer.Option(..., "--status", help="The file the step's exit code is written to."),
) -> None:
    """Wait for the step's exit code, record its output as a run and push it (a Kubernetes pod's second container)."""
    from pipex import api

    answer = api.worker_push_output(job, output, status)
    echo_json(answer)
    if answer.get("status") != "ran":
        raise typer.Exit(1)

k8s_app = typer.Typer(help="Kubernetes: the Job manifests pipex would submit.", no_args_is_help=True)
app.add_typer(k8s_app, name="k8s")


@k8s_app.command("manifests")
def manifests(
    targets: List[str] = typer.Argument(None, help="Step ids or globs (default: every step that would run)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help="Pipeline file or directory (default: cwd)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the YAML here (default: stdout)."),
    namespace: str = typer.Option("default", "--namespace", help="The namespace of the Jobs."),
    remote: Optional[str] = typer.Option(None, "--remote", help="The remote the pods fetch from and push to."),
    worker_image: str = typer.Option("pipex:latest", "--worker-image", help="An image with pipex, for the fetch and push containers."),
) -> None:
    """Write the Kubernetes Job manifests the steps that would run get (a dry run: nothing is submitted).

    Example: pipex k8s manifests -o jobs.yaml
    """
    from pipex import api

    text = api.k8s_manifests(file, targets=list(targets or []), namespace=namespace, remote=remote, worker_image=worker_image)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")
