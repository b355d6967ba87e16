"""The ``python`` kit: run a script or command with python3, after pip-installing dependencies."""

from __future__ import annotations

import posixpath
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

DEFAULT_VERSION = "3.12"
DEFAULT_VARIANT = "slim"
PIP_CACHE = "/root/.cache/pip"

WITH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "oneOf": [{"required": ["script"]}, {"required": ["run"]}],
    "x-errors": {"oneOf": "needs exactly one of 'script' or 'run'"},
    "properties": {
        "script": {"type": "string", "minLength": 1, "description": "A .py file in src (or, without src, relative to the project root)."},
        "run": RUN,
        "src": SRC,
        "packages": PACKAGE_LIST,
        "requirements": {"type": "string", "minLength": 1, "description": "A requirements file inside src."},
        "version": {"type": "string", "minLength": 1, "description": "Python version of the default image (quote it: '3.10')."},
        "variant": {"type": "string", "description": "Image variant (slim, alpine, bookworm...; empty for none)."},
        "image": IMAGE,
    },
}


def expand(params: Mapping[str, Any], ctx: KitContext) -> dict[str, Any]:
    """Build a python3 step; ``src`` is bind-mounted read-only at /src.

    A ``script`` without ``src`` mounts the script's own directory. Commands
    call ``python3``, which both the official images and Debian's have.
    """
    script = param(params, "script")
    src = param(params, "src")
    if script is not None and src is None:
        src = posixpath.dirname(script) or "."
        script = posixpath.basename(script)
    if param(params, "src") is not None:
        check_src(ctx, src)
    requirements = param(params, "requirements")
    if requirements is not None:
        if src is None:
            msg = "'requirements' needs 'src' (the requirements file is read from it)"
            raise KitError(msg, param="requirements")
        if posixpath.isabs(requirements) or ".." in requirements.split("/"):
            msg = f"'{requirements}' must be a path inside src"
            raise KitError(msg, param="requirements")
        if not ctx.is_file(f"{src}/{requirements}"):
            msg = f"no file '{requirements}' in '{src}'"
            raise KitError(msg, param="requirements")
    version = param(params, "version", DEFAULT_VERSION)
    variant = param(params, "variant", DEFAULT_VARIANT)
    step: dict[str, Any] = {
        "image": param(params, "image") or ctx.image or image_name("python", version, variant),
        "cmd": script_command(param(params, "run"), src=src is not None, interpreter="python3", script=script),
        "env": {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    }
    if src is not None:
        step["mounts"] = [{"host": src, "container": SRC_DIR}]
    packages = list(param(params, "packages", []))
    if packages or requirements:
        words = []
        if requirements:
            words += ["-r", f"{SRC_DIR}/{requirements}"]
        words += packages
        lines = [
            # Debian's python3 refuses system-wide installs (PEP 668) unless told;
            # older pips ignore these variables.
            f"export PIP_CACHE_DIR={PIP_CACHE} PIP_DISABLE_PIP_VERSION_CHECK=1 "
            "PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_INPUT=1",
            f"python3 -m pip install -q {quote_all(words)}",
        ]
        step["setup"] = setup_phase(lines, [cache("pip-cache", PIP_CACHE)])
    return step
