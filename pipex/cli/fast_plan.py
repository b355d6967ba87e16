"""``pipex plan`` without typer: argument parsing and plain rendering of a Plan, for a no-op plan in ~100 ms.

Why this module imports no typer: typer costs ~55 ms of a 150 ms budget, so
``pipex.cli`` keeps the typer app in ``pipex.cli.main`` and its ``__init__``
empty. The console entry point (``pipex.entry:main``) answers ``pipex plan``
here and hands every other command (and ``plan --help``) to
``pipex.cli.main:main``. ``pipex.cli.plan_cmds`` (the typer commands) renders
through the same functions, so both paths print the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pipex.engine.plan import Plan

__all__ = ["fast_plan", "plan_lines", "render_plan", "format_age"]

# Options of `pipex plan` that take a value, mapped to their keyword.
_VALUE_OPTIONS = {
    "-f": "file",
    "--file": "file",
    "-t": "target",
    "--target": "target",
    "-w": "workspace",
    "--workspace": "workspace",
    "--env-file": "env_file",
    "--store": "store",
    "--remote": "remote",
    "--pull": "pull",
}
_FLAG_OPTIONS = {"--offline": "offline", "--json": "json_output"}


def format_age(seconds: float | None) -> str:
    """Return an age the way people say it: ``42s``, ``5m``, ``2h``, ``3d``."""
    if seconds is None:
        return "?"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def plan_lines(plan: Plan) -> list[str]:
    """Return one line per step in plan order: status, step id, then run/age or reasons."""
    width = max((len(s.step_id) for s in plan.steps), default=0)
    lines = [f"warning: {w}" for w in plan.warnings]
    for decided in plan.steps:
        status = decided.status.value
        if status == "cached":
            run = (decided.run_id or "")[:8]
            if decided.source == "remote":
                detail = f"(remote run {run}, pushed {format_age(decided.age_sec)} ago)"
            else:
                detail = f"(run {run}, {format_age(decided.age_sec)} ago)"
            if decided.reasons:
                detail += "; " + "; ".join(decided.reasons)
        elif status == "pending":
            after = [r.split("'")[1] for r in decided.reasons if r.count("'") >= 2]
            detail = f"(after {', '.join(after)})" if after else "; ".join(decided.reasons)
        else:
            detail = "; ".join(decided.reasons)
        lines.append(f"{status:<8} {decided.step_id:<{width}}  {detail}".rstrip())
    return lines


def render_plan(plan: Plan, *, json_output: bool = False, out: TextIO | None = None) -> None:
    """Print a plan: one line per step, or one JSON document with ``json_output``."""
    stream = out or sys.stdout
    if json_output:
        stream.write(json.dumps(plan.to_dict(), sort_keys=True) + "\n")
        return
    stream.write("\n".join(plan_lines(plan)) + "\n")


def _parse(argv: list[str]) -> dict[str, Any] | None:
    """Parse ``pipex plan`` arguments; ``None`` when typer should handle them (help, unknown option)."""
    opts: dict[str, Any] = {
        "file": None,
        "targets": [],
        "workspace": None,
        "force": False,
        "env_files": [],
        "store": os.environ.get("PIPEX_STORE") or None,
        "offline": False,
        "json_output": False,
        "remote": None,
        "pull": None,
    }
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg == "--":
            opts["targets"].extend(argv[index + 1 :])
            break
        if name == "--force":
            if eq:
                value = inline
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                value = argv[index]
            else:
                value = "*"
            opts["force"] = True if value in ("*", "") else value
        elif name in _FLAG_OPTIONS and not eq:
            opts[_FLAG_OPTIONS[name]] = True
        elif name in _VALUE_OPTIONS:
            if eq:
                value = inline
            elif index + 1 < len(argv):
                index += 1
                value = argv[index]
            else:
                return None
            key = _VALUE_OPTIONS[name]
            if key == "target":
                opts["targets"].append(value)
            elif key == "env_file":
                opts["env_files"].append(value)
            else:
                opts[key] = value
        elif arg.startswith("-"):
            return None  # --help and anything unknown: typer says it properly
        else:
            opts["targets"].append(arg)
        index += 1
    return opts


def run_plan(
    *,
    file: str | None,
    targets: list[str],
    workspace: str | None,
    force: bool | str,
    env_files: list[str],
    store: str | None,
    offline: bool,
    json_output: bool,
    remote: str | None = None,
    pull: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Make the plan through ``pipex.api.plan`` and print it; return the exit code (0)."""
    from pipex import api

    the_plan = api.plan(
        file,
        targets=targets,
        workspace=workspace,
        force=force,
        env_files=env_files,
        store=store,
        offline=offline,
        remote=remote,
        pull=pull,
    )
    render_plan(the_plan, json_output=json_output, out=out)
    return 0


def fast_plan(argv: list[str]) -> int | None:
    """Run ``pipex plan ARGV`` without typer; ``None`` when the arguments need typer (e.g. ``--help``)."""
    opts = _parse(argv)
    if opts is None:
        return None
    # NOTE: a plan is a short-lived process that allocates many small containers
    # (documents, plans) and frees almost nothing; the cyclic GC would rescan
    # them again and again (~30% of a 10,000-step plan). Reference counting
    # still frees everything acyclic.
    import gc

    gc.disable()
    from pipex.errors import PipexError

    try:
        return run_plan(
            file=opts["file"],
            targets=opts["targets"],
            workspace=opts["workspace"],
            force=opts["force"],
            env_files=opts["env_files"],
            store=opts["store"],
            offline=opts["offline"],
            json_output=opts["json_output"],
            remote=opts["remote"],
            pull=opts["pull"],
        )
    except PipexError as error:
        if os.environ.get("PIPEX_DEBUG"):
            raise
        for line in str(error).splitlines() or [type(error).__name__]:
            sys.stderr.write(f"pipex: {line}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("pipex: interrupted\n")
        return 130
    except OSError as error:  # never a traceback (see pipex.cli.report_os_error, which it shares)
        if os.environ.get("PIPEX_DEBUG"):
            raise
        from pipex.cli.main import report_os_error

        return report_os_error(error)
