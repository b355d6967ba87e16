"""The python kit: script/run, src, packages, requirements, version, variant, image."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import pytest

from pipex.errors import SpecError
from pipex.kits import KitContext, KitError
from pipex.kits.python import expand
from pipex.spec.load import load_pipeline
from pipex.spec.model import CacheSpec, PathMapping


def test_defaults_python_3_12_slim_and_unbuffered_env(ctx: KitContext) -> None:
    step = expand({"run": "python3 -c 'print(1)'"}, ctx)
    assert step["image"] == "python:3.12-slim"
    assert step["cmd"] == "python3 -c 'print(1)'"
    assert step["env"] == {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    assert "mounts" not in step and "setup" not in step


def test_version_and_variant_choose_the_image(ctx: KitContext) -> None:
    assert expand({"run": "x", "version": "3.11", "variant": "alpine"}, ctx)["image"] == "python:3.11-alpine"
    assert expand({"run": "x", "version": "3.10", "variant": ""}, ctx)["image"] == "python:3.10"


def test_image_overrides(ctx: KitContext) -> None:
    configured = dataclasses.replace(ctx, image="pipex-test/python:3")
    assert expand({"run": "x", "version": "3.9"}, configured)["image"] == "pipex-test/python:3"
    assert expand({"run": "x", "image": "mine:1"}, configured)["image"] == "mine:1"


def test_script_in_src_runs_with_python3_from_src(ctx: KitContext) -> None:
    (ctx.root / "app").mkdir()
    step = expand({"script": "main.py", "src": "app"}, ctx)
    assert step["cmd"] == "cd /src && exec python3 main.py"
    assert step["mounts"] == [{"host": "app", "container": "/src"}]


def test_script_without_src_mounts_the_script_directory(ctx: KitContext) -> None:
    step = expand({"script": "tools/report.py"}, ctx)
    assert step["mounts"] == [{"host": "tools", "container": "/src"}]
    assert step["cmd"] == "cd /src && exec python3 report.py"
    assert expand({"script": "top.py"}, ctx)["mounts"] == [{"host": ".", "container": "/src"}]


def test_run_with_src_starts_in_src(ctx: KitContext) -> None:
    assert expand({"run": "python3 -m app", "src": "."}, ctx)["cmd"] == "cd /src\npython3 -m app"
    assert expand({"run": ["python3", "-V"], "src": "."}, ctx)["cmd"] == ["python3", "-V"]


def test_packages_and_requirements_pip_install_in_setup(ctx: KitContext) -> None:
    (ctx.root / "app").mkdir()
    (ctx.root / "app" / "requirements.txt").write_text("rich\n")
    step = expand({"run": "x", "src": "app", "requirements": "requirements.txt", "packages": ["numpy>=2"]}, ctx)
    setup = step["setup"]
    assert setup["allowNetwork"] is True
    assert setup["caches"] == [{"name": "pip-cache", "path": "/root/.cache/pip", "exclusive": True}]
    assert setup["cmd"].endswith("python3 -m pip install -q -r /src/requirements.txt 'numpy>=2'")
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" in setup["cmd"]


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"run": "x", "requirements": "r.txt"}, "requirements", "'requirements' needs 'src' (the requirements file is read from it)"),
        ({"run": "x", "src": ".", "requirements": "../r.txt"}, "requirements", "'../r.txt' must be a path inside src"),
        ({"run": "x", "src": ".", "requirements": "r.txt"}, "requirements", "no file 'r.txt' in '.'"),
        ({"run": "x", "src": "nope"}, "src", "'nope' does not exist in the project root"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict, param: str, message: str, ctx: KitContext) -> None:
    with pytest.raises(KitError) as info:
        expand(params, ctx)
    assert (info.value.param, info.value.message) == (param, message)


def test_python_step_through_the_loader(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: analyse\n    uses: python\n"
            "    with: {src: src, script: a.py, requirements: requirements.txt, packages: [rich]}\n"
            "    env: {PYTHONUNBUFFERED: '0'}\n",
            "src/a.py": "print(1)\n",
            "src/requirements.txt": "numpy\n",
            ".pipex.yml": "kits:\n  python: {image: pipex-test/python:3}\n",
        }
    )
    step = load_pipeline().steps[0]
    assert step.image == "pipex-test/python:3"
    assert step.cmd == ("sh", "-e", "-c", "cd /src && exec python3 a.py")
    assert step.mounts == (PathMapping("src", "/src"),)
    assert step.setup is not None and step.setup.caches == (CacheSpec("pip-cache", "/root/.cache/pip", True),)
    assert dict(step.env) == {"PYTHONUNBUFFERED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def test_unquoted_float_version_is_rejected(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, version: 3.10}\n"})
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == "pipeline.yaml:4:29: steps[0].with.version: expected a string, got 3.1"
