"""Custom kits: local files, aliases with defaults, entry points; their errors are located."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from pipex.spec.config import load_config
from pipex.errors import SpecError
from pipex.kits import Kit, KitContext, KitError
from pipex.spec import kit_registry as registry
from pipex.spec.kit_registry import as_kit, resolve_kit
from pipex.spec.load import load_pipeline

GREET = '''
WITH_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["who"],
               "properties": {"who": {"type": "string"}, "loud": {"type": "boolean"}}}

def expand(params, ctx):
    word = "HELLO" if params.get("loud") else "hello"
    return {"image": ctx.image or "alpine:3.20", "cmd": ["echo", word, params["who"]], "env": {"KIT": "greet"}}
'''


def test_local_file_kit_expands(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: hi\n    uses: greet\n    with: {who: world}\n    env: {X: '1'}\n",
            ".pipex.yml": "kits:\n  greet: {file: kits/greet.py, image: busybox:1}\n",
            "kits/greet.py": GREET,
        }
    )
    step = load_pipeline().steps[0]
    assert (step.image, step.cmd, dict(step.env), step.kit) == (
        "busybox:1",
        ("echo", "hello", "world"),
        {"KIT": "greet", "X": "1"},
        "greet",
    )


def test_local_kit_params_are_checked_by_its_schema(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: hi\n    uses: greet\n    with: {loud: 'yes'}\n",
            ".pipex.yml": "kits:\n  greet: {file: kits/greet.py}\n",
            "kits/greet.py": GREET,
        }
    )
    with pytest.raises(Exception) as info:
        load_pipeline()
    assert str(info.value).splitlines() == [
        "pipeline.yaml:4:11: steps[0].with: missing required field 'who'",
        "pipeline.yaml:4:18: steps[0].with.loud: expected true or false, got 'yes'",
    ]


def test_alias_with_default_params_and_image(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: t\n    uses: py311\n    with: {run: pytest}\n",
            ".pipex.yml": "kits:\n  py311: {uses: python, with: {version: '3.11', packages: [pytest]}}\n",
        }
    )
    step = load_pipeline().steps[0]
    assert step.image == "python:3.11-slim"
    assert step.setup is not None and "pytest" in step.setup.cmd[-1]
    assert step.kit == "py311"


def test_alias_settings_win_over_the_target_kit_settings(tmp_path: Path) -> None:
    (tmp_path / ".pipex.yml").write_text("kits:\n  python: {image: base:1}\n  py: {uses: python, image: alias:1}\n  py2: {uses: python}\n")
    config = load_config(tmp_path)
    assert resolve_kit("py", config).image == "alias:1"
    assert resolve_kit("py2", config).image == "base:1"


def test_alias_loop_is_an_error(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: t\n    uses: a\n",
            ".pipex.yml": "kits:\n  a: {uses: b}\n  b: {uses: a}\n",
        }
    )
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.yaml:3:11: steps[0].uses: kit alias loop: a -> b -> a"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "kit 'k': file {root}/k.py does not exist"),
        ({"k.py": "x = 1\n"}, "kit 'k': {root}/k.py defines no expand(params, ctx) function"),
        ({"k.py": "def expand(:\n"}, "kit 'k': loading {root}/k.py failed: SyntaxError: invalid syntax (k.py, line 1)"),
    ],
)
def test_broken_kit_files(files: dict[str, str], message: str, project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": "steps:\n  - id: t\n    uses: k\n", ".pipex.yml": "kits:\n  k: {file: k.py}\n", **files})
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.yaml:3:11: steps[0].uses: " + message.format(root=root)


class _EntryPoint:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def load(self) -> Any:
        return self.obj


def _echo(params: Mapping[str, Any], ctx: KitContext) -> dict[str, Any]:
    return {"image": "alpine:3.20", "cmd": ["echo", params.get("text", "")]}


def test_entry_point_kit_is_found_and_not_cached(
    project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, spec_cache: Path
) -> None:
    monkeypatch.setattr(registry, "_entry_points", lambda: {"echo": _EntryPoint(_echo)})
    project({"pipeline.yaml": "steps:\n  - id: t\n    uses: echo\n    with: {text: hi}\n"})
    assert load_pipeline().steps[0].cmd == ("echo", "hi")
    # Its code is outside the cache key, so a pipeline using it is never cached.
    assert not list((spec_cache / "spec-cache").glob("*.pickle"))


def test_unknown_kit_suggests_entry_point_names(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entry_points", lambda: {"terraform": _EntryPoint(_echo)})
    project({"pipeline.yaml": "steps:\n  - id: t\n    uses: terrafrom\n"})
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.yaml:3:11: steps[0].uses: unknown kit 'terrafrom' (did you mean 'terraform'?)"


def test_as_kit_adapts_kits_modules_and_callables() -> None:
    kit = Kit("k", _echo)
    assert as_kit("k", kit) is kit
    _echo_with_schema: Any = lambda params, ctx: {}  # noqa: E731
    _echo_with_schema.with_schema = {"type": "object", "required": ["x"]}
    assert as_kit("c", _echo_with_schema).with_schema == {"type": "object", "required": ["x"]}
    assert as_kit("e", _echo).with_schema == {"type": "object"}
    with pytest.raises(KitError):
        as_kit("bad", 42)
