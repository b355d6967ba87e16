"""Locate and read the JSON Schemas shipped with pipex (wheel data or source checkout)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["PIPELINE_SCHEMA", "CONFIG_SCHEMA", "schema_path", "schema_bytes", "load_schema"]

PIPELINE_SCHEMA = "pipeline.schema.json"
CONFIG_SCHEMA = "pipex-config.schema.json"


@cache
def schema_path(name: str) -> Path:
    """Return the path of a shipped schema file.

    An installed wheel carries the schemas as ``pipex/schemas/`` (pyproject
    force-includes them); a source checkout or editable install has them in the
    repository's top-level ``schemas/``.
    """
    from importlib.resources import files

    packaged = files("pipex") / "schemas" / name
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "schemas" / name
    if source.is_file():
        return source
    msg = f"schema {name} is missing from this pipex installation"
    raise FileNotFoundError(msg)


@cache
def schema_bytes(name: str) -> bytes:
    """Return the raw bytes of a shipped schema (part of the spec cache key)."""
    return schema_path(name).read_bytes()


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return a shipped schema as a parsed JSON document."""
    return json.loads(schema_bytes(name))
