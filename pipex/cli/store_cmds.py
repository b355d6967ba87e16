"""CLI commands: gc, prune, verify."""

from __future__ import annotations

from pipex.cli import app  # noqa: F401
