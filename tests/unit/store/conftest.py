"""Fixtures for store tests: a fresh store and a helper that writes step outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import TreeSpec, write_tree

from pipex.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh, empty store."""
    return Store.open(tmp_path / "store")


@pytest.fixture
def make_output(tmp_path: Path) -> Callable[[TreeSpec], Path]:
    """Write a step output from a spec into a fresh directory; return the directory."""
    counter = iter(range(1_000_000))

    def make(spec: TreeSpec) -> Path:
        return write_tree(tmp_path / f"out{next(counter)}", spec)

    return make
