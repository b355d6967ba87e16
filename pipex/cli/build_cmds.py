"""CLI commands: build, run."""

from __future__ import annotations

from pipex.cli import app  # noqa: F401
