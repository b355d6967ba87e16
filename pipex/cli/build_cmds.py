"""CLI commands: build (alias run for the original pipex form)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import EXECUTOR_HELP, REMOTE_HELP, SCHEDULER_HELP, echo_json

_FILE_HELP = "Pipeline file, or a directory holding pipeline.yml/.yaml/.json (default: cwd)."
_FORCE_HELP = "Ignore the cache: alone for every step, or --force=a,b for those steps."


def _tee(*sinks: Any) -> Any:
    def sink(event: Any) -> None:
        for each in sinks:
            each(event)

    return sink


def _child_argv(
    targets: List[str],
    pipeline: Optional[Path],
    *,
    workspace: Optional[str],
    force: Optional[str],
    verbose: bool,
    concurrency: Optional[int],
    env_file: List[Path],
    keep_going: bool,
    store: Optional[Path],
    offline: bool,
    profile: Optional[Path],
    remote: dict[str, Any],
) -> list[str]:
    """The same build as a ``pipex build`` command line for the background process (never detaching)."""
    argv = ["build", "--attach"]
    if pipeline is not None:
        argv += ["-f", str(Path(pipeline).absolute())]
    if workspace:
        argv += ["-w", workspace]
    if force:
        argv.append(f"--force={force}")
    if verbose:
        argv.append("--verbose")
    if concurrency:
        argv += ["-j", str(concurrency)]
    for file in env_file:
        argv += ["--env-file", str(Path(file).absolute())]
    if keep_going:
        argv.append("--keep-going")
    if store is not None:
        argv += ["--store", str(Path(store).absolute())]
    if offline:
        argv.append("--offline")
    if profile is not None:
        argv += ["--profile", str(Path(profile).absolute())]
    if remote.get("remote"):
        argv.append(f"--remote={remote['remote']}")
    if remote.get("pull"):
        argv.append(f"--pull={remote['pull']}")
    if remote.get("push") is not None:
        argv.append("--push" if remote["push"] else "--no-push")
    if remote.get("executor"):
        argv.append(f"--executor={remote['executor']}")
    if remote.get("scheduler"):
        argv.append(f"--scheduler={remote['scheduler']}")
    return [*argv, "--", *targets]


def _detach(opened: Any, name: str, argv: list[str], json_output: bool) -> None:
    from pipex import api

    status = api.start_detached(name, argv, store=opened)
    if json_output:
        echo_json({"workspace": name, "pid": status.pid, "state": status.state, "store": str(opened.root)})
        return
    typer.echo(f"building workspace '{name}' in the background (pid {status.pid})")
    typer.echo(f"  follow it: pipex attach {name}")
    typer.echo(f"  stop it:   pipex cancel {name}")


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
    detach: Optional[bool] = None,
    profile: Optional[Path] = None,
    remote: Optional[dict[str, Any]] = None,
) -> None:
    from pipex import api
    from pipex.errors import PipexError
    from pipex.cli.render import make_renderer

    remote = remote or {}
    force_value: bool | str = True if force == "*" else (force or False)
    if profile is not None:
        api.check_trace_path(profile)  # refuse now, not after a build that succeeded
    owner = api.detached_owner()
    recorder = None
    if owner is not None:
        # A detached build process owns the workspace's record from its first instant (main() maps SIGTERM to 130).
        recorder = api.build_recorder(owner[1], store=api.open_store(owner[0]), owner=True)
    code = 2
    try:
        project = api.load(pipeline, env_files=env_file)
        if dry_run:
            from pipex.cli.fast_plan import render_plan

            the_plan = api.plan(
                pipeline, targets=targets, workspace=workspace, force=force_value,
                env_files=env_file, store=store, offline=offline, project=project,
                remote=remote.get("remote"), pull=remote.get("pull"),
            )
            render_plan(the_plan, json_output=json_output)
            code = 0
            return
        opened = api.open_store(store, project.config)
        name = api.workspace_name(project, workspace)
        if detach is None:
            detach = bool(project.config.detach) and owner is None
        if detach:
            argv = _child_argv(
                targets, pipeline, workspace=workspace, force=force, verbose=verbose, concurrency=concurrency,
                env_file=env_file, keep_going=keep_going, store=store, offline=offline, profile=profile,
                remote=remote,
            )
            _detach(opened, name, argv, json_output)
            code = 0
            return
        if recorder is None:
            recorder = api.build_recorder(name, store=opened)
        # A detached build's audience is `pipex attach`, which renders its event log.
        renderer = _ignore if owner is not None else make_renderer(json_output=json_output, verbose=verbose, quiet=quiet)
        events: list[Any] = []
        sinks = [renderer, recorder] + ([events.append] if profile is not None else [])
        try:
            result = api.build(
                pipeline,
                targets=targets,
                workspace=workspace,
                force=force_value,
                env_files=env_file,
                store=opened,
                concurrency=concurrency,
                keep_going=keep_going,
                verbose=verbose,
                offline=offline,
                sink=_tee(*sinks),
                project=project,
                **remote,
            )
        finally:
            close = getattr(renderer, "close", None)
            if close is not None:
                close()
            if profile is not None:
                api.write_trace(events, profile)
        code = 0 if result.ok else 1
        if not result.ok:
            raise typer.Exit(1)
    except PipexError as error:
        code = error.exit_code
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        if recorder is not None:
            recorder.finish(code)


def _ignore(event: Any) -> None:
    return None


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
    detach: Optional[bool] = typer.Option(
        None, "--detach/--attach", help="Build in the background (pipex attach/cancel WS), or in the foreground even when .pipex.yml says detach: true."
    ),
    profile: Optional[Path] = typer.Option(None, "--profile", help="Write a Chrome trace-event JSON of the build (open in ui.perfetto.dev)."),
    remote: Optional[str] = typer.Option(None, "--remote", help=REMOTE_HELP),
    pull: Optional[str] = typer.Option(None, "--pull", help="lazy (records and trees; objects when read), eager (every object) or off."),
    push: Optional[bool] = typer.Option(None, "--push/--no-push", help="Push successful runs to the remote (default: when the credentials may write)."),
    executor: Optional[str] = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Build targets and what they need, like make; unchanged steps come from the store or the remote cache."""
    _run_build(
        file, list(targets or []) + list(target), workspace=workspace, force=force, dry_run=dry_run,
        verbose=verbose, quiet=quiet, concurrency=concurrency, env_file=env_file,
        keep_going=keep_going, json_output=json_output, store=store, offline=offline,
        detach=detach, profile=profile,
        remote={"remote": remote, "pull": pull, "push": push, "executor": executor, "scheduler": scheduler},
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
