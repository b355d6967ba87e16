"""The ``shell`` kit: run a shell command, optionally after installing OS packages."""

from __future__ import annotations

from typing import Any, Mapping

from pipex.spec.kit import KitContext
from pipex.kits.common import IMAGE, PACKAGE_LIST, RUN, SYSTEM_PACKAGE_CACHES, param, setup_phase, system_packages_lines

__all__ = ["DEFAULT_IMAGE", "WITH_SCHEMA", "expand"]

DEFAULT_IMAGE = "alpine:3.20"

WITH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["run"],
    "properties": {"run": RUN, "packages": PACKAGE_LIST, "image": IMAGE},
}


def expand(params: Mapping[str, Any], ctx: KitContext) -> dict[str, Any]:
    """``run`` in the image (default alpine); ``packages`` via apt-get or apk in setup."""
    step: dict[str, Any] = {
        "image": param(params, "image") or ctx.image or DEFAULT_IMAGE,
        "cmd": params["run"],
    }
    packages = list(param(params, "packages", []))
    if packages:
        step["setup"] = setup_phase(system_packages_lines(packages), list(SYSTEM_PACKAGE_CACHES))
    return step
