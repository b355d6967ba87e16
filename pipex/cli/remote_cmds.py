"""CLI commands: push, pull, remote status (the shared remote cache)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pipex.cli._common import REMOTE_HELP, STORE_HELP, echo_json
from pipex.cli.main import app
from pipex.cli.render import format_size

_FILE_HELP = "Pipeline file, or a directory holding pipeline.yml/.yaml/.json (default: cwd)."

remote_app = typer.Typer(help="The shared remote cache: status, gc, verify.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")


@app.command("push")
def push(
    steps: List[str] = typer.Argument(None, help="Step ids or globs (default: every step with a successful run)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace (default: the pipeline's)."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help=STORE_HELP),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Send the workspace's successful runs that the remote lacks (a second push of unchanged work sends nothing)."""
    from pipex import api

    results = api.push(file, workspace=workspace, steps=list(steps or []), store=store, remote=remote)
    sent = [r for r in results if r.pushed]
    if json_output:
        echo_json({"runs": [r.to_dict() for r in results], "pushed": len(sent)})
        return
    objects = sum(r.objects for r in sent)
    size = sum(r.bytes for r in sent)
    typer.echo(
        f"pushed {len(sent)} runs ({objects} objects, {format_size(size)}); "
        f"{len(results) - len(sent)} were on the remote already"
    )


@app.command("pull")
def pull(
    targets: List[str] = typer.Argument(None, help="Step ids or globs (default: every leaf step)."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    workspace: Optional[str] = typer.Option(None, "-w", "--workspace", help="Workspace (default: the pipeline's)."),
    objects: bool = typer.Option(False, "--objects", help="Fetch every object of those runs too (for export in CI)."),
    store: Optional[Path] = typer.Option(None, "--store", envvar="PIPEX_STORE", help=STORE_HELP),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Take the remote's runs of the targets' steps into this workspace, without running anything."""
    from pipex import api

    report = api.pull(file, targets=list(targets or []), workspace=workspace, objects=objects, store=store, remote=remote)
    if json_output:
        echo_json(report)
        return
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    line = f"pulled {len(report.pulled)} runs, {len(report.local)} were here"
    if objects:
        line += f", fetched {report.objects} objects"
    if report.missing:
        line += f"; not on the remote: {', '.join(report.missing)}"
    typer.echo(line)


@remote_app.command("status")
def status(
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Whether the remote answers, and whether these credentials may read and write it."""
    from pipex import api

    report = api.remote_status(file, remote=remote)
    if json_output:
        echo_json(report)
    else:
        where = f"{report.url}" + (f" at {report.endpoint}" if report.endpoint else "")
        typer.echo(f"remote     {where}")
        typer.echo(f"identity   {report.identity or 'the default AWS credential chain'}")
        typer.echo(f"reachable  {'yes' if report.reachable else 'no'}")
        typer.echo(f"read       {'yes' if report.can_read else 'no'}")
        typer.echo(f"write      {'yes' if report.can_write else 'no (read-only: builds pull, never push)'}")
        if report.runs is not None:
            typer.echo(f"runs       {report.runs}")
        if report.error:
            typer.echo(f"error      {report.error}")
    if not report.reachable:
        raise typer.Exit(2)


@remote_app.command("gc")
def gc(
    older_than: str = typer.Option("30d", "--older-than", help="Delete run records pushed longer ago than this (30d, 12h…)."),
    grace: str = typer.Option("24h", "--grace", help="Keep unnamed objects and trees younger than this (pushes in flight)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would go; delete nothing."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Collect the remote: old records, then whatever no record names (needs writer credentials)."""
    from pipex import api

    report = api.remote_gc(file, older_than=older_than, grace=grace, dry_run=dry_run, remote=remote)
    if json_output:
        echo_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {report.runs_deleted} runs, {report.trees_deleted} trees, {report.objects_deleted} objects "
        f"({format_size(report.bytes_deleted)}), {report.other_deleted} other keys, {report.uploads_aborted} unfinished uploads; "
        f"kept {report.runs_kept} runs, {report.trees_kept} trees, {report.objects_kept} objects"
    )


@remote_app.command("verify")
def verify(
    sample: int = typer.Option(0, "--sample", min=0, help="Also download and hash this many random objects."),
    file: Optional[Path] = typer.Option(None, "-f", "--file", help=_FILE_HELP),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Check every record, the tree it names and its objects' sizes on the remote; exit 1 on damage."""
    from pipex import api

    report = api.remote_verify(file, sample=sample, remote=remote)
    if json_output:
        echo_json({**_plain(report), "ok": report.ok})
    else:
        for problem in report.problems:
            typer.echo(problem)
        typer.echo(
            f"checked {report.runs} runs, {report.trees} trees, {report.objects} objects ({report.sampled} hashed): "
            + ("no damage" if report.ok else f"{len(report.problems)} problems")
        )
    if not report.ok:
        raise typer.Exit(1)


def _plain(value: object) -> dict[str, object]:
    from pipex.cli._common import plain

    result = plain(value)
    assert isinstance(result, dict)
    return result
