"""The package's shape is a promise too: small modules, no import cycle, and imports that only point down.

The layers, top to bottom (CONTRIBUTING's table); a module may import its own
layer and any layer below it, never one above:

    cli -> api -> ops -> engine -> executor, kits -> spec -> store -> errors, events

Imports under ``if TYPE_CHECKING:`` are for types only and do not count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipex"
MAX_LINES = 400

# Layer of each top-level part of pipex, and what each layer may import.
LAYER = {
    "cli": 7, "entry": 7, "__main__": 7,
    "api": 6,
    "ops": 5,
    "engine": 4,
    "executor": 3, "kits": 3, "remote": 3,
    "spec": 2,
    "store": 1,
    "errors": 0, "events": 0, "_lazy": 0,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The pipex modules ``path`` imports when it runs (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            out.update(subs if len(subs) == len(node.names) else [base, *subs])
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _runtime_imports(path, name, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYER[parts[1]] if len(parts) > 1 else 0


def test_no_module_is_longer_than_400_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_there_is_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if state[start] == 0:
            visit(start, [start])
    assert cycles == []


def test_imports_only_point_down() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


@pytest.mark.parametrize("layer", ["store", "executor"])
def test_store_and_executor_know_nothing_of_yaml_specs_or_fingerprints(layer: str) -> None:
    for module, targets in _graph().items():
        if module.startswith(f"pipex.{layer}"):
            bad = [t for t in targets if t.startswith(("pipex.spec", "pipex.engine", "pipex.kits", "pipex.ops"))]
            assert bad == [], module
            text = _modules()[module].read_text()
            assert "import yaml" not in text and "fingerprint_of" not in text, module


def test_the_cli_imports_only_the_api_its_renderers_and_errors() -> None:
    allowed = ("pipex.api", "pipex.cli", "pipex.errors", "pipex.events")
    bad = {
        m: sorted(t for t in ts if t != "pipex" and not t.startswith(allowed))  # pipex: its __version__
        for m, ts in _graph().items()
        if m.startswith("pipex.cli")
    }
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_docker_is_imported_only_under_executor_docker() -> None:
    importers = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )
            if any(n == "docker" or n.startswith("docker.") for n in names):
                importers.append(name)
    assert importers and all(m.startswith("pipex.executor.docker") for m in importers), importers


def test_meta_json_is_written_and_read_only_by_run_meta() -> None:
    """``RunMeta`` owns meta.json: no other module spells the file name or reads it by string keys."""
    owners = {"pipex.store.runs"}
    spelled = [name for name, path in _modules().items() if '"meta.json"' in path.read_text() and name not in owners]
    # The store checks that a run directory has one (its existence), and gc/verify/follow name the layout.
    assert set(spelled) <= {"pipex.store.store", "pipex.store.refs", "pipex.ops.follow"}, spelled
    for name, path in _modules().items():
        text = path.read_text()
        assert 'meta["' not in text and "meta.get(" not in text, name
