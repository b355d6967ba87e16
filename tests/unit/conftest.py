"""Fixtures for spec and kit tests: a private spec cache and a project directory to write files into."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture
def spec_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the validated-pipeline cache out of the user's home."""
    directory = tmp_path_factory.mktemp("spec-cache")
    monkeypatch.setenv("PIPEX_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write files (name -> text or bytes) into a fresh project dir, chdir there, return the dir."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)

    def write(files: dict[str, str | bytes]) -> Path:
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return root

    return write
