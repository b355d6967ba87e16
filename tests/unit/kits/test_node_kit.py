"""The node kit: script/run, src, packages, packageManager, install, version, variant, image."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import pytest

from pipex.kits import KitContext, KitError
from pipex.kits.node import expand
from pipex.spec.load import load_pipeline
from pipex.spec.model import CacheSpec, PathMapping


@pytest.fixture
def app(ctx: KitContext) -> Path:
    """A src dir with a package.json."""
    directory = ctx.root / "web"
    directory.mkdir()
    (directory / "package.json").write_text("{}")
    return directory


def test_defaults_node_20_slim_and_global_module_path(ctx: KitContext) -> None:
    step = expand({"run": "node -v"}, ctx)
    assert step == {"image": "node:20-slim", "cmd": "node -v", "env": {"NODE_PATH": "/usr/local/lib/node_modules"}}


def test_version_variant_and_image(ctx: KitContext) -> None:
    assert expand({"run": "x", "version": 18, "variant": "alpine"}, ctx)["image"] == "node:18-alpine"
    assert expand({"run": "x", "version": "22", "variant": ""}, ctx)["image"] == "node:22"
    configured = dataclasses.replace(ctx, image="pipex-test/node:18")
    assert expand({"run": "x"}, configured)["image"] == "pipex-test/node:18"
    assert expand({"run": "x", "image": "mine:1"}, configured)["image"] == "mine:1"


def test_script_in_src_is_copied_in_and_run_with_node(ctx: KitContext) -> None:
    (ctx.root / "web").mkdir()
    step = expand({"script": "render.js", "src": "web"}, ctx)
    assert step["cmd"] == "cd /src && exec node render.js"
    assert step["sources"] == [{"host": "web", "container": "/src"}]
    assert "setup" not in step  # no package.json: nothing to install


def test_install_defaults_to_on_when_src_has_package_json(ctx: KitContext, app: Path) -> None:
    setup = expand({"run": "npm test", "src": "web"}, ctx)["setup"]
    assert setup["allowNetwork"] is True
    assert setup["caches"] == [{"name": "npm-cache", "path": "/root/.npm", "exclusive": True}]
    assert "cd /src\nif [ -f package-lock.json ]; then npm ci; else npm install; fi" in setup["cmd"]
    assert "setup" not in expand({"run": "x", "src": "web", "install": False}, ctx)


@pytest.mark.parametrize(
    ("manager", "cache_names", "command"),
    [
        ("pnpm", ["npm-cache", "pnpm-store"], "pnpm install --frozen-lockfile --store-dir /root/.local/share/pnpm/store"),
        ("yarn", ["npm-cache", "yarn-cache"], "yarn install --frozen-lockfile --cache-folder /usr/local/share/.cache/yarn"),
    ],
)
def test_package_managers_use_their_own_exclusive_caches(
    manager: str, cache_names: list[str], command: str, ctx: KitContext, app: Path
) -> None:
    setup = expand({"run": "x", "src": "web", "packageManager": manager}, ctx)["setup"]
    assert [c["name"] for c in setup["caches"]] == cache_names
    assert all(c["exclusive"] for c in setup["caches"])
    assert command in setup["cmd"]
    assert f"command -v {manager} >/dev/null 2>&1 || npm install -g {manager}" in setup["cmd"]


def test_packages_install_globally(ctx: KitContext) -> None:
    setup = expand({"run": "x", "packages": ["typescript@5", "marked"]}, ctx)["setup"]
    assert "npm install -g typescript@5 marked" in setup["cmd"]
    assert "cd /src" not in setup["cmd"]


def test_install_without_src_is_a_parameter_error(ctx: KitContext) -> None:
    with pytest.raises(KitError) as info:
        expand({"run": "x", "install": True}, ctx)
    assert (info.value.param, info.value.message) == ("install", "'install' needs 'src' (the directory holding package.json)")


def test_node_step_through_the_loader(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: render\n    uses: node\n    with: {src: web, script: r.js}\n"
            "    sources: [{host: extra, container: /extra}]\n",
            "web/r.js": "",
            "web/package.json": "{}",
            "extra/x": "",
            ".pipex.yml": "kits:\n  node: {image: pipex-test/node:18}\n",
        }
    )
    step = load_pipeline().steps[0]
    assert step.image == "pipex-test/node:18"
    assert step.sources == (PathMapping("web", "/src"), PathMapping("extra", "/extra"))
    assert step.setup is not None and step.setup.caches == (CacheSpec("npm-cache", "/root/.npm", True),)
