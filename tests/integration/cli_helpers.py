"""Helpers for CLI integration tests: a temp project + store, pipex as a real process, container cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .build_helpers import KIT_IMAGES, containers, remove_containers

__all__ = ["Cli", "containers", "remove_containers"]


@dataclass
class Cli:
    """A project directory and store; ``run`` is ``pipex ARGS`` in the project, ``start`` the same in the background."""

    root: Path
    store: Path
    env: dict[str, str] = field(default_factory=dict)  # extra environment (credentials, PIPEX_REMOTE)

    def write(self, pipeline: str, files: dict[str, str] | None = None, config: str = "") -> None:
        """Write pipeline.yaml, .pipex.yml (kit images + ``config``) and extra files."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "pipeline.yaml").write_text(textwrap.dedent(pipeline))
        (self.root / ".pipex.yml").write_text(KIT_IMAGES + config)
        for name, text in (files or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PIPEX_DEBUG"}
        return {**env, "PIPEX_STORE": str(self.store), "NO_COLOR": "1", **self.env}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run pipex to the end."""
        return subprocess.run(
            [sys.executable, "-m", "pipex", *args], cwd=self.root, env=self._env(), capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start pipex without waiting."""
        return subprocess.Popen(
            [sys.executable, "-m", "pipex", *args], cwd=self.root, env=self._env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def events(self, text: str) -> list[dict[str, Any]]:
        """NDJSON lines as dicts."""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for_container(self, step: str, timeout: float = 60) -> None:
        """Wait until a container of ``step`` exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any((c.get("Labels") or {}).get("pipex.step") == step for c in containers(self.store)):
                return
            time.sleep(0.2)
        raise AssertionError(f"no container for step {step} appeared")
