"""Refs: the gc roots. Workspaces hold symlinks to runs; pins keep runs by hand.

On disk::

    workspaces/<ws>/workspace.json            {"project_root": "/abs/path"}
    workspaces/<ws>/steps/<step>  -> ../../../runs/<run_id>   current successful run
    workspaces/<ws>/failed/<step> -> ../../../runs/<run_id>   last failed run
    pins/<run_id>                              empty file: run kept by hand

A ref is a relative symlink, so the store can be moved or mounted elsewhere,
and ``ls -l`` shows what a workspace points at. It is replaced atomically:
the new link is made under a temporary name and renamed over the old one.
"""

from __future__ import annotations

import os
import re

from pipex.errors import StoreError

__all__ = ["REF_KINDS", "check_name", "check_kind", "link_target", "parse_link"]

REF_KINDS = ("steps", "failed")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_PREFIX = "../../../runs/"


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a safe name for one path component (step, cache, workspace), else raise.

    Workspaces may not start with '.' (listings skip dot names); steps and
    caches follow the pipeline schema, which allows it. '.' and '..' never.
    """
    if (
        not isinstance(value, str)
        or not _NAME_RE.match(value)
        or value in (".", "..")
        or (what == "workspace" and value.startswith("."))
    ):
        hint = ", not starting with '.'" if what == "workspace" else ""
        msg = f"invalid {what} name {value!r}: use letters, digits, '_', '-' and '.'{hint}"
        raise StoreError(msg)
    return value


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a ref kind (steps, failed)."""
    if kind not in REF_KINDS:
        msg = f"unknown ref kind {kind!r}: use one of {', '.join(REF_KINDS)}"
        raise StoreError(msg)
    return kind


def link_target(run_id: str) -> str:
    """What a ref symlink contains for ``run_id``."""
    return _PREFIX + run_id


def parse_link(target: str) -> str | None:
    """The run id a ref symlink names, or None if the link is not a ref."""
    if not target.startswith(_PREFIX):
        return None
    run_id = target[len(_PREFIX) :]
    return run_id if run_id and "/" not in run_id and run_id not in (".", "..") else None


def read_link(path: str | os.PathLike[str]) -> str | None:
    """The run id of the ref at ``path``; None if there is none."""
    try:
        return parse_link(os.readlink(path))
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None
