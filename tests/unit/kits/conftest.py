"""Fixtures for kit tests: a private spec cache, a project dir, and a kit context in it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from pipex.kits import KitContext


@pytest.fixture(autouse=True)
def spec_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the validated-pipeline cache out of the user's home."""
    directory = tmp_path_factory.mktemp("spec-cache")
    monkeypatch.setenv("PIPEX_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write files (name -> text) into a fresh project dir, chdir there, return the dir."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)

    def write(files: dict[str, str]) -> Path:
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return root

    return write


@pytest.fixture
def ctx(tmp_path: Path) -> KitContext:
    """A kit context rooted in an empty temp dir, no image override."""
    return KitContext(step_id="s", root=tmp_path, kit="test")
