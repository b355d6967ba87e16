"""Pieces the built-in kits share: schema fragments, shell quoting, image names, setup phases."""

from __future__ import annotations

import shlex
from typing import Any, Iterable, Mapping

__all__ = [
    "PACKAGE_LIST",
    "RUN",
    "IMAGE",
    "SRC",
    "SRC_DIR",
    "cache",
    "image_name",
    "quote_all",
    "script_command",
    "setup_phase",
]

SRC_DIR = "/src"

# A package spec is one shell word that cannot be mistaken for an option.
PACKAGE_LIST: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "string",
        "pattern": r"^[^\s-]\S*$",
        "x-errors": {"pattern": "invalid package {value}: one word, not starting with '-'"},
    },
    "description": "Packages installed in the setup phase (with network and an exclusive cache).",
}
RUN: dict[str, Any] = {
    "type": ["string", "array"],
    "minLength": 1,
    "minItems": 1,
    "items": {"type": "string"},
    "description": "The command: a string runs with sh -e -c, stopping at the first failing line (in the source dir when 'src' is set); a list is an argv.",
}
IMAGE: dict[str, Any] = {"type": "string", "minLength": 1, "description": "Image to use instead of the kit's default."}
SRC: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "Source directory (relative to the project root), available at /src.",
}


def cache(name: str, path: str) -> dict[str, Any]:
    """An exclusive package-manager cache entry in step-file format."""
    return {"name": name, "path": path, "exclusive": True}


def quote_all(words: Iterable[str]) -> str:
    """Shell-quote words and join them with spaces."""
    return " ".join(shlex.quote(word) for word in words)


def image_name(repository: str, version: str, variant: str) -> str:
    """``repo:version-variant``, or ``repo:version`` when the variant is empty."""
    return f"{repository}:{version}-{variant}" if variant else f"{repository}:{version}"


def script_command(run: Any, *, src: bool, interpreter: str | None = None, script: str | None = None) -> Any:
    """Build ``cmd``: a script run by ``interpreter``, or ``run`` (string or argv).

    String commands and scripts start in /src when a source dir is mounted, so
    relative paths in them mean what they mean on the host.
    """
    if script is not None:
        line = f"exec {interpreter} {shlex.quote(script)}"
        return f"cd {SRC_DIR} && {line}" if src else line
    if isinstance(run, str) and src:
        return f"cd {SRC_DIR}\n{run}"
    return list(run) if isinstance(run, list) else run


def setup_phase(lines: list[str], caches: list[dict[str, Any]]) -> dict[str, Any]:
    """A setup phase running ``lines`` with network and exclusive caches."""
    return {"cmd": "set -e\n" + "\n".join(lines), "caches": caches, "allowNetwork": True}


def system_packages_lines(packages: list[str]) -> list[str]:
    """Shell lines installing OS packages with apt-get (Debian) or apk (Alpine)."""
    words = quote_all(packages)
    return [
        "if command -v apt-get >/dev/null 2>&1; then",
        # Debian images delete downloaded .debs after install; keep them in the cache.
        "  rm -f /etc/apt/apt.conf.d/docker-clean",
        "  apt-get update -qq",
        "  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        f"-o APT::Keep-Downloaded-Packages=true {words}",
        "elif command -v apk >/dev/null 2>&1; then",
        f"  apk add --cache-dir /var/cache/apk {words}",
        "else",
        f"  echo 'pipex: no apt-get or apk in this image to install' {words} >&2",
        "  exit 1",
        "fi",
    ]


SYSTEM_PACKAGE_CACHES = [
    cache("apt-cache", "/var/cache/apt"),
    cache("apt-lists", "/var/lib/apt/lists"),
    cache("apk-cache", "/var/cache/apk"),
]


def check_src(ctx: Any, src: str | None) -> None:
    """Reject a source dir outside the project (or missing) where the user wrote it: ``with.src``."""
    if src is None:
        return
    from pipex.spec.kit import KitError
    from pipex.spec.paths import check_host_path

    _, error = check_host_path(src, ctx.root)
    if error:
        raise KitError(error, param="src")


def param(params: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A parameter's value, treating an explicit null as absent."""
    value = params.get(name)
    return default if value is None else value
