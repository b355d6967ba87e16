"""Helpers for build tests: write a project, build it through pipex.api, read results."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipex import api
from pipex.events import Event, EventKind

BUSYBOX = "pipex-test/busybox:1"
PYTHON = "pipex-test/python:3"
NODE = "pipex-test/node:18"

KIT_IMAGES = f"""\
kits:
  shell: {{image: "{BUSYBOX}"}}
  python: {{image: "{PYTHON}"}}
  node: {{image: "{NODE}"}}
"""


def containers(store: Path) -> list[dict[str, Any]]:
    """Containers labelled with ``store`` (all states), as the engine lists them (no racy per-container inspect)."""
    import docker

    client = docker.APIClient(version="auto")
    try:
        return client.containers(all=True, filters={"label": f"pipex.store={store.resolve()}"})
    finally:
        client.close()


def remove_containers(store: Path) -> list[str]:
    """Remove containers labelled with ``store``; return their names."""
    import docker
    from docker.errors import NotFound

    left = containers(store)
    client = docker.APIClient(version="auto")
    try:
        for container in left:
            try:
                client.remove_container(container["Id"], force=True)
            except NotFound:
                pass  # it was on its way out already
    finally:
        client.close()
    return [name for c in left for name in c.get("Names") or [c["Id"][:12]]]


@dataclass
class Project:
    """A temp project directory and store, built through the API."""

    root: Path
    store: Path
    events: list[Event] = field(default_factory=list)

    def write(self, pipeline: str, files: dict[str, str] | None = None) -> None:
        """Write pipeline.yaml (dedented), .pipex.yml and extra files."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "pipeline.yaml").write_text(textwrap.dedent(pipeline))
        (self.root / ".pipex.yml").write_text(KIT_IMAGES)
        for name, text in (files or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def build(self, *targets: str, **kwargs: Any) -> Any:
        """Build and return the BuildResult; events land in ``self.events``."""
        self.events = []
        return api.build(self.root, targets=targets, store=self.store, sink=self.events.append, **kwargs)

    def outcome(self, result: Any, step: str) -> str:
        """The outcome value ('succeeded', 'cached', …) of one step."""
        return next(r.outcome.value for r in result.results if r.step_id == step)

    def outcomes(self, result: Any) -> dict[str, str]:
        """Outcome per step id."""
        return {r.step_id: r.outcome.value for r in result.results}

    def output(self, result: Any, step: str, name: str) -> str:
        """Text of file ``name`` in the output of ``step`` in this build."""
        from pipex.store import Store

        tree = next(r.tree_id for r in result.results if r.step_id == step)
        assert tree, f"step {step} has no output tree"
        store = Store.open(self.store)
        return (store.checkout(tree) / name).read_text()

    def meta(self, result: Any, step: str) -> dict[str, Any]:
        """meta.json of the run of ``step`` in this build."""
        run_id = next(r.run_id for r in result.results if r.step_id == step)
        return json.loads((self.store / "runs" / run_id / "meta.json").read_text())

    def kinds(self, kind: EventKind) -> list[Event]:
        """Events of one kind from the last build."""
        return [e for e in self.events if e.kind is kind]
