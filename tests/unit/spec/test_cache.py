"""The validated-pipeline cache: hits skip parsing and validation; any relevant change misses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from pipex.errors import SpecError
from pipex.spec import cache, document
from pipex.spec.load import load_pipeline

PIPELINE = "steps:\n  - id: a\n    image: alpine:3.20\n    cmd: echo\n    mounts: [{host: data, container: /d}]\n"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every document parse (the expensive, cache-skipped part)."""
    calls: list[str] = []
    real = document.parse_document

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(str(args[0]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(document, "parse_document", spy)
    return calls


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed although cached")

    monkeypatch.setattr(document, "parse_document", fail)


def test_second_load_is_a_cache_hit_without_parsing(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    first = load_pipeline()
    _forbid_parsing(monkeypatch)
    assert load_pipeline() == first


def test_edited_file_invalidates(project: Callable[..., Path], counted: list[str]) -> None:
    root = project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    load_pipeline()
    (root / "pipeline.yaml").write_text(PIPELINE.replace("echo", "echo edited"))
    assert load_pipeline().steps[0].cmd == ("sh", "-e", "-c", "echo edited")
    assert len(counted) == 2


@pytest.mark.parametrize(
    "change",
    ["config", "cli-env-file", "step-env-file"],
)
def test_changes_to_files_the_result_depends_on_invalidate(
    change: str, project: Callable[..., Path], counted: list[str]
) -> None:
    root = project(
        {
            "pipeline.yaml": PIPELINE + "    envFile: step.env\n",
            "data/x": "1",
            "step.env": "S=1\n",
            "cli.env": "C=1\n",
            ".pipex.yml": "concurrency: 2\n",
        }
    )
    load_pipeline(env_files=["cli.env"])
    edits = {"config": (".pipex.yml", "concurrency: 3\n"), "cli-env-file": ("cli.env", "C=2\n"), "step-env-file": ("step.env", "S=22\n")}
    name, text = edits[change]
    (root / name).write_text(text)
    env = dict(load_pipeline(env_files=["cli.env"]).steps[0].env)
    parses = [c for c in counted if c.endswith("pipeline.yaml")]
    assert len(parses) == 2
    assert env == {"C": "2" if change == "cli-env-file" else "1", "S": "22" if change == "step-env-file" else "1"}


def test_hit_still_checks_host_paths(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    load_pipeline()
    (root / "data" / "x").unlink()
    (root / "data").rmdir()
    with pytest.raises(SpecError, match="'data' does not exist in the project root"):
        load_pipeline()


def test_hit_rejects_a_mount_that_became_an_escaping_symlink(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    load_pipeline()
    (root / "data" / "x").unlink()
    (root / "data").rmdir()
    (root / "data").symlink_to(root.parent)
    with pytest.raises(SpecError, match="resolves outside the project root"):
        load_pipeline()


def test_moved_project_is_a_different_entry(project: Callable[..., Path], tmp_path: Path) -> None:
    root = project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    load_pipeline()
    moved = tmp_path / "moved"
    root.rename(moved)
    assert load_pipeline(moved).root == moved.resolve()


def test_corrupt_entry_is_ignored(project: Callable[..., Path], spec_cache: Path, counted: list[str]) -> None:
    project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    expected = load_pipeline()
    for entry in (spec_cache / "spec-cache").glob("*.pickle"):
        entry.write_bytes(b"\x80\x04garbage")
    assert load_pipeline() == expected
    assert len(counted) == 2


def test_unwritable_cache_dir_is_not_an_error(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PIPEX_CACHE_DIR", str(blocker))
    project({"pipeline.yaml": PIPELINE, "data/x": "1"})
    assert load_pipeline().step_ids == ("a",)


def test_cache_key_depends_on_part_boundaries() -> None:
    assert cache.cache_key(b"ab", b"c") != cache.cache_key(b"a", b"bc")


def test_cache_hit_imports_neither_yaml_nor_jsonschema(project: Callable[..., Path], spec_cache: Path) -> None:
    root = project({"pipeline.yaml": PIPELINE, "data/x": "1", ".pipex.yml": "concurrency: 2\n"})
    load_pipeline()
    code = (
        "import sys; from pipex.spec.load import load_pipeline; from pipex.spec.config import load_config;"
        f"load_pipeline({str(root)!r}); load_config(__import__('pathlib').Path({str(root)!r}));"
        "print(sorted(m for m in ('yaml', 'jsonschema') if m in sys.modules))"
    )
    from pipex.spec.config import load_config

    load_config(root)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PIPEX_CACHE_DIR": str(spec_cache), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


def test_adding_a_file_a_kit_probed_for_invalidates(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": "steps:\n  - id: web\n    uses: node\n    with: {src: web, run: node x.js}\n", "web/x.js": ""})
    assert load_pipeline().steps[0].setup is None
    (root / "web" / "package.json").write_text("{}")
    assert load_pipeline().steps[0].setup is not None


def test_edited_local_kit_file_invalidates(project: Callable[..., Path]) -> None:
    kit = "def expand(params, ctx):\n    return {'image': 'x', 'cmd': ['v1']}\n"
    root = project({"pipeline.yaml": "steps:\n  - id: a\n    uses: k\n", ".pipex.yml": "kits:\n  k: {file: k.py}\n", "k.py": kit})
    assert load_pipeline().steps[0].cmd == ("v1",)
    (root / "k.py").write_text(kit.replace("v1", "v2-longer"))
    assert load_pipeline().steps[0].cmd == ("v2-longer",)


def test_cache_keeps_only_the_newest_entries(spec_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for i in range(6):
        cache.write(cache.cache_key(str(i).encode()), i)
    assert len(list((spec_cache / "spec-cache").glob("*.pickle"))) == 3
    assert cache.read(cache.cache_key(b"5")) == 5
