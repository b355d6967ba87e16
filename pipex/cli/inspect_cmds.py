"""CLI commands that read a workspace's results: show, list, logs, inspect, cat, export."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from pipex.cli.main import app
from pipex.cli._common import STORE_HELP, complete_step, complete_workspace, echo_json, open_store

_JSON_HELP = "Print data as JSON."


def _age(seconds: float | None) -> str:
    from pipex.cli.fast_plan import format_age

    return f"{format_age(seconds)} ago" if seconds is not None else "-"


def _iso(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


@app.command("show")
def show_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace (default: the one of this directory).", autocompletion=complete_workspace),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Show a workspace's steps: state, current run, age, duration and output size."""
    from pipex import api
    from pipex.cli.render import format_duration, format_size

    view = api.show(workspace, store=open_store(store))
    if json_output:
        echo_json({**_as_dict(view), "steps": [{**_as_dict(s), "ageSec": s.age_sec} for s in view.steps]})
        return
    typer.echo(f"workspace {view.workspace}" + (f"  ({view.project_root})" if view.project_root else "") + ("  [building]" if view.building else ""))
    if not view.steps and not view.running:
        typer.echo("  no steps built yet")
        return
    # A WORKER column only when a cluster ran some step (a local workspace keeps its narrow table).
    workers = any(s.worker for s in view.steps)
    rows = [["STEP", "STATE", "RUN", "AGE", "DURATION", "SIZE"] + (["WORKER"] if workers else [])]
    for s in view.steps:
        state = s.state.value if s.exit_code in (None, 0) else f"{s.state.value} ({s.exit_code})"
        if s.step in view.running:
            state = "running"
        row = [s.step, state, s.run_id[:12], _age(s.age_sec), format_duration(s.duration_ms) or "-", format_size(s.bytes) or "-"]
        rows.append(row + ([s.worker or "here"] if workers else []))
    built = {s.step for s in view.steps}
    rows += [[step, "running", "-", "-", "-", "-"] + (["-"] if workers else []) for step in view.running if step not in built]
    for line in _table(rows):
        typer.echo(f"  {line}")


def _as_dict(value: Any) -> dict[str, Any]:
    from pipex.cli._common import plain

    return plain(value)


@app.command("list")
def list_command(
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """List the store's workspaces with their steps, sizes and project roots."""
    from pipex import api
    from pipex.cli.render import format_size

    summaries = api.list_workspaces(store=open_store(store))
    if json_output:
        echo_json(summaries)
        return
    if not summaries:
        typer.echo("no workspaces")
        return
    rows = [["WORKSPACE", "STEPS", "FAILED", "SIZE", "BUILT", "PROJECT"]]
    now = time.time()
    for w in summaries:
        age = _age(now - w.last_finished_at) if w.last_finished_at else "-"
        name = w.workspace + (" [building]" if w.building else "")
        rows.append([name, str(w.steps), str(w.failed), format_size(w.bytes), age, w.project_root or "-"])
    for line in _table(rows):
        typer.echo(line)


@app.command("logs")
def logs_command(
    workspace: str = typer.Argument(..., help="Workspace.", autocompletion=complete_workspace),
    step: str = typer.Argument(..., help="Step.", autocompletion=complete_step),
    stream: str = typer.Option("both", "--stream", help="stdout, stderr or both."),
    follow: bool = typer.Option(False, "--follow", "-F", help="While a build runs the step, follow its output."),
    run: Optional[str] = typer.Option(None, "--run", help="A run id (or unique prefix) instead of the latest run."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per line: {stream, line}."),
) -> None:
    """Print a step's logs (stdout to stdout, stderr to stderr); the latest run, failed or not."""
    from pipex import api

    opened = open_store(store)
    write = _JsonLines() if json_output else _raw
    if follow and run is None:
        chunks = api.follow_logs(workspace, step, stream, store=opened)
    else:
        chunks = _recorded(api.log_paths(api.find_run(workspace, step, run, store=opened), stream))
    for name, chunk in chunks:
        write(name, chunk)
    if isinstance(write, _JsonLines):
        write.flush()


def _recorded(paths: list[tuple[str, Path]]) -> Any:
    for name, path in paths:
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 16), b""):
                    yield name, chunk
        except FileNotFoundError:
            continue


_TERMINAL_WRITERS: dict[str, Any] = {}


def _raw(stream: str, chunk: bytes) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    if out.isatty():
        # A step's output may hold escape sequences: make them visible on a terminal.
        from pipex.cli.render import TerminalSafeWriter

        _TERMINAL_WRITERS.setdefault(stream, TerminalSafeWriter(out.buffer)).write(chunk)
        return
    out.buffer.write(chunk)
    out.flush()


class _JsonLines:
    """``{"stream", "line"}`` per line; a last line without a newline is printed by ``flush``."""

    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}

    def __call__(self, stream: str, chunk: bytes) -> None:
        *lines, rest = (self._pending.pop(stream, b"") + chunk).split(b"\n")
        if rest:
            self._pending[stream] = rest
        for line in lines:
            self._emit(stream, line)

    def _emit(self, stream: str, line: bytes) -> None:
        typer.echo(json.dumps({"stream": stream, "line": line.decode("utf-8", "replace")}, ensure_ascii=False))

    def flush(self) -> None:
        """Print what is left of each stream."""
        for stream, rest in self._pending.items():
            self._emit(stream, rest)
        self._pending.clear()


@app.command("inspect")
def inspect_command(
    workspace: Optional[str] = typer.Argument(None, help="Workspace.", autocompletion=complete_workspace),
    step: Optional[str] = typer.Argument(None, help="Step (not with --timeline).", autocompletion=complete_step),
    run: Optional[str] = typer.Option(None, "--run", help="A run id (or unique prefix) instead of the latest run."),
    timeline: bool = typer.Option(False, "--timeline", help="Print the latest build's Chrome trace-event JSON."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="With --timeline: write the trace to this file."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the run record (meta.json, format 2) as JSON."),
) -> None:
    """Print a run's meta.json (fingerprint and what went into it, image, command, times, sizes)."""
    from pipex import api

    from pipex.errors import UsageError

    opened = open_store(store)
    if timeline:
        name = api.resolve_workspace(workspace, store=opened)
        events = api.recorded_events(name, store=opened)
        if not events:
            msg = f"no build of workspace '{name}' was recorded by this pipex; run pipex build, then inspect --timeline"
            raise UsageError(msg)
        if output is not None:
            api.write_trace(events, output)
            typer.echo(f"wrote {output} (open it in https://ui.perfetto.dev)", err=True)
        else:
            typer.echo(api.trace_json(events))
        return
    if step is None:
        msg = "name a step: pipex inspect WS STEP (or pipex inspect WS --timeline)"
        raise UsageError(msg)
    record = api.find_run(workspace, step, run, store=opened)
    if json_output:
        typer.echo(json.dumps(record.meta.to_dict(), ensure_ascii=False, sort_keys=True))
        return
    typer.echo(f"run {record.run_id}  ({record.path})")
    meta = record.meta.to_dict()
    for key in sorted(meta):
        value = meta[key]
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2).replace("\n", "\n    ")
        elif key.endswith("_at") and isinstance(value, (int, float)):
            value = f"{value}  ({_iso(value)})"
        typer.echo(f"  {key}: {value}")


@app.command("cat")
def cat_command(
    workspace: str = typer.Argument(..., help="Workspace.", autocompletion=complete_workspace),
    step: str = typer.Argument(..., help="Step.", autocompletion=complete_step),
    path: Optional[str] = typer.Argument(None, help="A file (printed) or directory (listed) of the output; default: list all."),
    run: Optional[str] = typer.Option(None, "--run", help="A run id (or unique prefix) instead of the current run."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="List entries as JSON."),
) -> None:
    """Print a file of a step's output, or list the output; links are never followed out of it."""
    from pipex import api

    from pipex.cli.render import format_size

    opened = open_store(store)
    record = api.find_run(workspace, step, run, store=opened, succeeded=run is None)
    tree = record.output_tree
    if tree is None:
        from pipex.errors import UsageError

        msg = f"run {record.run_id} recorded no output"
        raise UsageError(msg)
    listing = path is None or json_output or api.output_kind(tree, path, store=opened) == "dir"
    if not listing:
        target: Any = sys.stdout.buffer
        if sys.stdout.isatty():
            from pipex.cli.render import TerminalSafeWriter

            target = TerminalSafeWriter(sys.stdout.buffer)
        _copy_to(api.read_output(tree, path or "", store=opened), target)
        return
    items = api.list_output(tree, path or "", store=opened)
    if json_output:
        echo_json(items)
        return
    for item in items:
        if item.type == "dir":
            typer.echo(f"{item.path}/")
        elif item.type == "link":
            typer.echo(f"{item.path} -> {item.target}")
        else:
            typer.echo(f"{item.path}  ({format_size(item.size)})")


@app.command("export")
def export_command(
    workspace: str = typer.Argument(..., help="Workspace.", autocompletion=complete_workspace),
    step: str = typer.Argument(..., help="Step.", autocompletion=complete_step),
    dest: Path = typer.Argument(..., help="Destination directory (absent or empty)."),
    run: Optional[str] = typer.Option(None, "--run", help="A run id (or unique prefix) instead of the current run."),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Copy a step's output to DEST; refused if a link in it would lead outside the output."""
    from pipex import api

    from pipex.errors import UsageError
    from pipex.cli.render import format_size

    opened = open_store(store)
    record = api.find_run(workspace, step, run, store=opened, succeeded=run is None)
    if record.output_tree is None:
        msg = f"run {record.run_id} recorded no output"
        raise UsageError(msg)
    api.export_output(record.output_tree, dest, store=opened)
    files, size = record.meta.files, record.meta.bytes
    if json_output:
        echo_json({"dest": str(dest), "runId": record.run_id, "tree": record.output_tree, "files": files, "bytes": size})
    else:
        typer.echo(f"exported {step} (run {record.run_id[:12]}) to {dest}: {files} file{'' if files == 1 else 's'}, {format_size(size)}")


def _copy_to(chunks: Any, out: Any) -> int:
    """Write ``chunks`` to ``out``; return the byte count."""
    total = 0
    for chunk in chunks:
        out.write(chunk)
        total += len(chunk)
    out.flush()
    return total
