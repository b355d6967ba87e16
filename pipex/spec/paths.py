"""Checks and normal forms for host paths (inside the project root) and container paths."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path

__all__ = ["check_host_path", "host_paths_ok", "check_container_path", "slugify", "ID_PATTERN", "CACHE_NAME_PATTERN"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
CACHE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


def slugify(text: str) -> str:
    """Lower-case ``text`` and turn every run of other characters into one ``-``."""
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-")


def check_host_path(value: str, root: Path, *, must_exist: bool = True) -> tuple[str, str | None]:
    """Return ``(normalised, error)`` for a host path relative to ``root`` (already resolved).

    The path must be relative, must stay inside the root after ``..`` and
    symlinks are resolved, and (by default) must exist. The normal form is
    lexical (``./a/../b`` -> ``b``), POSIX, relative: moving the project
    keeps it, and a symlink is still resolved at use time.
    """
    if value.startswith("/") or value.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", value):
        return value, f"must be a path relative to the project root, got '{value}'"
    normal = posixpath.normpath(value.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return normal, f"'{value}' is outside the project root"
    # os.path rather than pathlib: a cache hit re-runs this for every mount.
    base = str(root)
    try:
        resolved = os.path.realpath(os.path.join(base, normal), strict=False)
    except (OSError, RuntimeError):  # a symlink loop on some platforms
        return normal, f"'{value}' cannot be resolved (symlink loop?)"
    if resolved != base and not resolved.startswith(base.rstrip(os.sep) + os.sep):
        return normal, f"'{value}' resolves outside the project root (through a symlink)"
    if must_exist and not os.path.exists(resolved):
        return normal, f"'{value}' does not exist in the project root"
    return normal, None


def host_paths_ok(values: set[str], root: Path) -> bool:
    """True if every (already normalised, relative) host path still exists inside ``root``.

    The re-check of a validated-pipeline cache hit, one per mount: each parent
    directory is resolved once and each path costs one ``lstat``, instead of
    a full ``realpath`` walk per path (the hot part of a no-op plan).
    """
    base = str(root)
    inside = base.rstrip(os.sep) + os.sep
    parents: dict[str, str] = {}
    for value in values:
        parent, _, name = value.rpartition("/")
        if parent not in parents:
            parents[parent] = os.path.realpath(os.path.join(base, parent)) if parent else base
        real_parent = parents[parent]
        candidate = os.path.join(real_parent, name)
        try:
            if stat.S_ISLNK(os.lstat(candidate).st_mode):
                candidate = os.path.realpath(candidate)
                if not os.path.exists(candidate):
                    return False
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return False
        if candidate != base and not candidate.startswith(inside):
            return False
    return True


def check_container_path(value: str) -> tuple[str, str | None]:
    """Return ``(normalised, error)`` for a container path: absolute, no ``..``, not ``/``."""
    if not value.startswith("/"):
        return value, f"must be an absolute container path, got '{value}'"
    if ".." in value.split("/"):
        return value, f"must not contain '..', got '{value}'"
    normal = "/" + posixpath.normpath(value).lstrip("/")
    if normal == "/":
        return normal, "cannot be '/'"
    return normal, None
