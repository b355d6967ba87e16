"""The typer app: flags -> API call -> render. Errors become one line and an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

import typer

from pipex import __version__
from pipex.errors import PipexError

__all__ = ["app", "main"]

app = typer.Typer(
    name="pipex",
    help="A make-like build tool whose steps run in Docker containers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pipex {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pipex: build targets whose steps run in containers; results live in a content-addressed store."""


def _register_commands() -> None:
    # Each command module owns one group of commands and registers them on `app`.
    import importlib

    for module in (
        "spec_cmds",
        "plan_cmds",
        "build_cmds",
        "store_cmds",
        "inspect_cmds",
        "workspace_cmds",
        "detach_cmds",
        "exec_cmds",
        "remote_cmds",
        "worker_cmds",
    ):
        importlib.import_module(f"pipex.cli.{module}")


def report_error(error: PipexError) -> None:
    """Print a user error as one line per problem on stderr, prefixed by ``pipex:``."""
    for line in str(error).splitlines() or [type(error).__name__]:
        typer.echo(f"pipex: {line}", err=True)


# Options whose value is optional: alone they mean "all" (click needs a value).
# `run` keeps the original pipex's boolean -f/--force (a step list needs `=`), so
# `pipex run -f pipeline.yaml` still means "force, this pipeline".
_OPTIONAL_VALUE_OPTIONS = {"build": ("--force",), "plan": ("--force",), "run": ("-f", "--force")}
_FLAG_ONLY = {"run"}


def normalise_argv(argv: list[str]) -> list[str]:
    """Give a bare ``--force`` the value ``*`` (all steps) unless a step list follows it.

    ``--force a,b`` and ``--force=a,b`` name steps; ``--force`` followed by
    nothing or by another option forces every step.
    """
    if not argv or argv[0] not in _OPTIONAL_VALUE_OPTIONS:
        return argv
    names = _OPTIONAL_VALUE_OPTIONS[argv[0]]
    out: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in names:
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or following.startswith("-") or argv[0] in _FLAG_ONLY:
                out.extend((f"{arg}=*",) if arg.startswith("--") else (arg, "*"))
            else:
                out.extend((arg, following))
                index += 1
        else:
            out.append(arg)
        index += 1
    return out


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _click_exceptions() -> Any:
    """The click exception module typer uses (its own fork since typer 0.20, click before)."""
    try:
        from typer._click import exceptions
    except ImportError:  # an older typer on plain click
        from click import exceptions  # type: ignore[no-redef, import-not-found, unused-ignore]  # click is there when distributed is
    return exceptions


def _usage_line(error: Exception) -> str:
    """A click usage error as the one documented ``pipex: …`` line, with where to read more."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    ctx = getattr(error, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"pipex: {' '.join(message.split())}{where}"


def report_os_error(error: OSError) -> int:
    """The last line of defence: an OSError no layer turned into a PipexError, as one line; exit 2.

    With no file name it was our own output that failed (``> /dev/full``, a
    closed pipe): Python's exit flush must then not print a traceback either.
    """
    reason = error.strerror or str(error)
    if error.filename is None:
        _quiet_streams()
        line = f"pipex: cannot write the output: {reason}"
    else:
        from pipex.errors import shorten

        line = f"pipex: {shorten(str(error.filename), 200)}: {reason}"
    with contextlib.suppress(OSError):
        typer.echo(line, err=True)
    return 2


def _quiet_streams() -> None:
    """After stdout failed (a full disk, a closed pipe), keep Python's exit flush from printing a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout,):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    os.close(devnull)


def main() -> None:
    """Console entry point: run the app, turning PipexError into its exit code."""
    click_errors = _click_exceptions()
    _register_commands()
    # SIGTERM means what Ctrl-C means, in every phase: a build replaces this
    # handler while steps run; before that (loading, waiting for a lock) the
    # default action would kill pipex with no message and status 143.
    signal.signal(signal.SIGTERM, _terminate)
    # SIGHUP (the terminal closed) too: the build stops and removes its containers.
    signal.signal(signal.SIGHUP, _terminate)
    try:
        code = app(args=normalise_argv(sys.argv[1:]), prog_name="pipex", standalone_mode=False)
        sys.stdout.flush()
    except PipexError as error:
        if os.environ.get("PIPEX_DEBUG"):
            raise
        report_error(error)
        sys.exit(error.exit_code)
    except click_errors.NoArgsIsHelpError as error:
        error.show()
        sys.exit(error.exit_code)
    except click_errors.UsageError as error:
        typer.echo(_usage_line(error), err=True)
        sys.exit(2)
    except click_errors.ClickException as error:
        typer.echo(f"pipex: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("pipex: interrupted", err=True)
        sys.exit(130)
    except typer.Abort:  # a confirmation answered no
        typer.echo("pipex: aborted", err=True)
        sys.exit(1)
    except OSError as error:
        if os.environ.get("PIPEX_DEBUG"):
            raise
        sys.exit(report_os_error(error))
    sys.exit(code if isinstance(code, int) else 0)
