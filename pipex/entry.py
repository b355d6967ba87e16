"""The ``pipex`` console entry point: fast paths without typer, everything else through ``pipex.cli.main``.

Importing ``pipex.cli.main`` imports typer and rich (~100 ms); a no-op ``pipex
plan`` must answer in less than that, so it is parsed and run here first.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run ``pipex`` with ``sys.argv``: ``plan`` on the typer-free path when it can, the typer app otherwise."""
    argv = sys.argv[1:]
    if argv[:1] == ["plan"]:
        from pipex.cli.fast_plan import fast_plan

        code = fast_plan(argv[1:])
        if code is not None:
            sys.stdout.flush()
            sys.exit(code)
    from pipex.cli.main import main as typer_main

    typer_main()
