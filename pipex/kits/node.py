"""The ``node`` kit: run a script or command with node, after installing npm packages."""

from __future__ import annotations

from typing import Any, Mapping

from pipex.spec.kit import KitContext, KitError
from pipex.kits.common import (
    IMAGE,
    PACKAGE_LIST,
    RUN,
    SRC,
    SRC_DIR,
    cache,
    check_src,
    image_name,
    param,
    quote_all,
    script_command,
    setup_phase,
)

__all__ = ["DEFAULT_VERSION", "DEFAULT_VARIANT", "WITH_SCHEMA", "expand"]

DEFAULT_VERSION = "20"
DEFAULT_VARIANT = "slim"
GLOBAL_MODULES = "/usr/local/lib/node_modules"
NPM_CACHE = "/root/.npm"
PNPM_STORE = "/root/.local/share/pnpm/store"
YARN_CACHE = "/usr/local/share/.cache/yarn"

WITH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "oneOf": [{"required": ["script"]}, {"required": ["run"]}],
    "x-errors": {"oneOf": "needs exactly one of 'script' or 'run'"},
    "properties": {
        "script": {"type": "string", "minLength": 1, "description": "A .js file in src."},
        "run": RUN,
        "src": SRC,
        "packages": {**PACKAGE_LIST, "description": "npm packages installed globally (resolvable through NODE_PATH)."},
        "packageManager": {"enum": ["npm", "pnpm", "yarn"], "description": "Installs src's dependencies (default npm)."},
        "install": {"type": "boolean", "description": "Install src's dependencies (default: when src has a package.json)."},
        "version": {"type": ["string", "integer"], "description": "Node.js version of the default image."},
        "variant": {"type": "string", "description": "Image variant (slim, alpine, bookworm...; empty for none)."},
        "image": IMAGE,
    },
}

_INSTALL = {
    "npm": "if [ -f package-lock.json ]; then npm ci; else npm install; fi",
    "pnpm": (
        "command -v pnpm >/dev/null 2>&1 || npm install -g pnpm\n"
        f"if [ -f pnpm-lock.yaml ]; then pnpm install --frozen-lockfile --store-dir {PNPM_STORE}; "
        f"else pnpm install --store-dir {PNPM_STORE}; fi"
    ),
    "yarn": (
        "command -v yarn >/dev/null 2>&1 || npm install -g yarn\n"
        f"if [ -f yarn.lock ]; then yarn install --frozen-lockfile --cache-folder {YARN_CACHE}; "
        f"else yarn install --cache-folder {YARN_CACHE}; fi"
    ),
}
_CACHES = {
    "npm": [cache("npm-cache", NPM_CACHE)],
    "pnpm": [cache("npm-cache", NPM_CACHE), cache("pnpm-store", PNPM_STORE)],
    "yarn": [cache("npm-cache", NPM_CACHE), cache("yarn-cache", YARN_CACHE)],
}


def expand(params: Mapping[str, Any], ctx: KitContext) -> dict[str, Any]:
    """Build a node step; ``src`` is copied in at /src (``sources``) so installs can write node_modules."""
    script = param(params, "script")
    src = param(params, "src")
    check_src(ctx, src)
    manager = param(params, "packageManager", "npm")
    install = param(params, "install")
    if install is None:
        install = src is not None and ctx.is_file(f"{src}/package.json")
    if install and src is None:
        msg = "'install' needs 'src' (the directory holding package.json)"
        raise KitError(msg, param="install")
    version = str(param(params, "version", DEFAULT_VERSION))
    variant = param(params, "variant", DEFAULT_VARIANT)
    step: dict[str, Any] = {
        "image": param(params, "image") or ctx.image or image_name("node", version, variant),
        "cmd": script_command(param(params, "run"), src=src is not None, interpreter="node", script=script),
        "env": {"NODE_PATH": GLOBAL_MODULES},
    }
    if src is not None:
        step["sources"] = [{"host": src, "container": SRC_DIR}]
    packages = list(param(params, "packages", []))
    if packages or install:
        lines = [
            f"export npm_config_cache={NPM_CACHE} npm_config_update_notifier=false "
            "npm_config_fund=false npm_config_audit=false"
        ]
        if packages:
            lines.append(f"npm install -g {quote_all(packages)}")
        if install:
            lines += [f"cd {SRC_DIR}", _INSTALL[manager]]
        step["setup"] = setup_phase(lines, list(_CACHES[manager] if install else _CACHES["npm"]))
    return step
