"""Run records: one finished execution of a step, ``runs/<run_id>/{meta.json,stdout.log,stderr.log}``.

A run directory is assembled in staging (meta.json written and fsynced, logs
moved in) and renamed into ``runs/`` in one step, so a reader sees a
complete run or none. ``run_id`` is the step's fingerprint for a successful
run; the runner picks other ids for failed or unstable runs.

``meta.json`` is the runner's, except one key the store follows: ``output_tree``
(a tree id), which gc marks and verify checks.
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipex.errors import RunNotFoundError, StoreCorruptError, StoreError
from pipex.store._fs import read_regular_file

__all__ = ["RunRecord", "RunNotFoundError", "LOG_STREAMS", "check_run_id", "load_meta"]

LOG_STREAMS = ("stdout", "stderr")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,199}$")


@dataclass(frozen=True)
class RunRecord:
    """A stored run: its id, its directory and its meta.json."""

    run_id: str
    path: Path
    meta: dict[str, Any]

    @property
    def output_tree(self) -> str | None:
        """The tree id of the run's output, if it recorded one."""
        tree = self.meta.get("output_tree")
        return tree if isinstance(tree, str) else None

    def log(self, stream: str) -> Path:
        """Path of ``stdout.log`` or ``stderr.log``."""
        if stream not in LOG_STREAMS:
            msg = f"unknown log stream {stream!r}: use stdout or stderr"
            raise StoreError(msg)
        return self.path / f"{stream}.log"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe directory name, else raise StoreError."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        msg = f"invalid run id {run_id!r}: use letters, digits and _.+=- (at most 200)"
        raise StoreError(msg)
    return run_id


def load_meta(run_id: str, run_dir: Path, meta_file: str | None = None) -> dict[str, Any]:
    """Read ``meta.json`` of a run; RunNotFoundError if absent, StoreCorruptError if unreadable.

    ``meta_file`` is the same path as a string, when the caller has it (cheaper than pathlib).
    """
    try:
        data = read_regular_file(meta_file or run_dir / "meta.json")  # a fifo planted there must not hang us
    except FileNotFoundError:
        if run_dir.is_dir():
            msg = f"run {run_id} is damaged (no meta.json); run 'pipex verify --repair'"
            raise StoreCorruptError(msg) from None
        msg = f"run {run_id} not found in the store"
        raise RunNotFoundError(msg) from None
    except OSError as error:
        if error.errno == errno.EINVAL:  # not a regular file (a fifo, a directory)
            msg = f"run {run_id} is damaged (meta.json: {error.strerror}); run 'pipex verify --repair'"
            raise StoreCorruptError(msg) from None
        msg = f"cannot read run {run_id}: {error.strerror}"
        raise StoreError(msg) from error
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict):
        msg = f"run {run_id} is damaged (meta.json is not a JSON object); run 'pipex verify --repair'"
        raise StoreCorruptError(msg)
    tree = meta.get("output_tree")
    if tree is not None and not isinstance(tree, str):
        msg = f"run {run_id} is damaged (output_tree is not a string)"
        raise StoreCorruptError(msg)
    return meta
