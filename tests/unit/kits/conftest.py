"""Fixtures for kit tests: a private spec cache and a kit context (the project fixture is in tests/unit/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipex.kits import KitContext


@pytest.fixture(autouse=True)
def _private_spec_cache(spec_cache: Path) -> None:
    """Apply ``spec_cache`` (tests/unit/conftest.py) to every kit test."""


@pytest.fixture
def ctx(tmp_path: Path) -> KitContext:
    """A kit context rooted in an empty temp dir, no image override."""
    return KitContext(step_id="s", root=tmp_path, kit="test")
