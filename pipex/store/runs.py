"""Run records: one finished execution of a step, ``runs/<run_id>/{meta.json,stdout.log,stderr.log}``.

A run directory is assembled in staging (meta.json written and fsynced, logs
moved in) and renamed into ``runs/`` in one step, so a reader sees a
complete run or none. ``run_id`` is the step's fingerprint for a successful
run; failed and unstable runs get other ids (``run_id_for``).

``meta.json`` is owned by :class:`RunMeta`, its only writer and reader. The
store itself follows one key, ``output_tree`` (a tree id), which gc marks and
verify checks.

meta.json, format 2 (one JSON object, snake_case keys; every key optional when read)
-----------------------------------------------------------------------------------
==================  ==========================================================
key                 value
==================  ==========================================================
format              2 (absent in format 1, written before pipex 0.x had it:
                    the same keys otherwise)
step, workspace     the step id and the workspace that ran it
status              ``succeeded`` or ``failed``
fingerprint         the step's fingerprint (None: failed before it was known)
fingerprint_doc     the canonical document hashed into it (``pipex.engine.fingerprint``)
image_ref/image_id  the image reference as written and the image id that ran
cmd, setup_cmd      argv lists (setup_cmd None without setup)
exit_code           the command's exit code (None: it never ran)
timed_out           True when ``timeoutSec`` killed it
message             why it failed outside its command (refused output, no image)
started_at,         Unix times (float seconds) and the duration in ms
finished_at,
duration_ms
attempts, retries   attempts made; retries allowed
output_tree         the output's tree id (None: nothing kept)
bytes, files        the output's size
pipex_version       the pipex that recorded it
pulled_from         the remote cache URL a lazily pulled run came from (its
                    objects are fetched when read; None: made here)
pushed_at           when that remote got the run (Unix time)
worker              the cluster worker that ran it (``host/worker``; None: here)
==================  ==========================================================

Unknown keys (a newer pipex's) are kept on read and written back unchanged;
a reader never fails on a missing key. Run ids: a successful run's id is its
fingerprint; others are ``<fingerprint>-failed-<ms>`` and
``<fingerprint>-unstable-<ms>`` (:func:`run_id_for`), so they never shadow
a cache hit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.errors import RunNotFoundError, StoreCorruptError, StoreError
from pipex.store._fs import copy_file, exchange, fsync_dir, rename_into_place, read_regular_file, rmtree, store_errors, syncfs, write_temp
from pipex.store.owners import owner_token

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["RunMeta", "RunStatus", "RunRecord", "RunNotFoundError", "LOG_STREAMS", "META_FORMAT", "check_run_id", "load_meta", "log_tail", "run_id_for"]

LOG_STREAMS = ("stdout", "stderr")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,199}$")


META_FORMAT = 2


class RunStatus(str, Enum):
    """How a recorded run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class RunMeta:
    """A run's ``meta.json`` (format in the module docstring): the only code that writes or reads it."""

    step: str | None = None
    workspace: str | None = None
    status: RunStatus = RunStatus.SUCCEEDED
    fingerprint: str | None = None
    fingerprint_doc: Mapping[str, Any] | None = None
    image_ref: str | None = None
    image_id: str | None = None
    cmd: tuple[str, ...] = ()
    setup_cmd: tuple[str, ...] | None = None
    exit_code: int | None = None
    timed_out: bool = False
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: int = 0
    attempts: int = 0
    retries: int = 0
    output_tree: str | None = None
    bytes: int = 0
    files: int = 0
    pipex_version: str | None = None
    pulled_from: str | None = None
    pushed_at: float | None = None
    worker: str | None = None
    format: int = field(default=META_FORMAT, compare=False)  # the format it was read in
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def succeeded(self) -> bool:
        """True for a successful run."""
        return self.status is RunStatus.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``meta.json`` (unknown keys read earlier are kept)."""
        doc: dict[str, Any] = dict(self.extra)
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if isinstance(value, RunStatus):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            doc[item.name] = value
        doc["format"] = META_FORMAT  # written in this format, whatever it was read in
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], run_id: str = "?") -> RunMeta:
        """Read a ``meta.json`` object of any format: missing keys get defaults, unknown ones go to ``extra``.

        A value of the wrong type is read as its default (a reader never fails
        on one), except ``output_tree``, which the store follows: then
        StoreCorruptError.
        """
        # NOTE: a no-op plan of 10,000 steps reads 10,000 of these: one pass
        # over the keys with exact-type checks, and the instance filled
        # directly (a frozen dataclass's __init__ costs ~3 us for 23 fields).
        values = dict(_DEFAULTS)
        extra: dict[str, Any] = {}
        for name, value in doc.items():
            kinds = _KINDS.get(name)
            if kinds is None:
                extra[name] = value
            elif type(value) in kinds:
                values[name] = value
            elif name == "output_tree":
                msg = f"run {run_id} is damaged (output_tree is not a string)"
                raise StoreCorruptError(msg)
        status = values["status"]
        values["status"] = RunStatus.SUCCEEDED if status == "succeeded" else RunStatus.FAILED
        for name in ("cmd", "setup_cmd"):
            words = values[name]
            if type(words) is list:
                values[name] = tuple(w if type(w) is str else str(w) for w in words)
        for name in ("duration_ms", "attempts", "retries", "bytes", "files"):
            values[name] = int(values[name])
        values["extra"] = extra
        meta = object.__new__(cls)
        meta.__dict__.update(values)
        return meta


_NONE = type(None)
_NUMBER = (int, float)
#: The exact JSON types each key may have; anything else reads as its default.
_KINDS: dict[str, tuple[type, ...]] = {
    "step": (str, _NONE), "workspace": (str, _NONE), "status": (str,), "fingerprint": (str, _NONE),
    "fingerprint_doc": (dict, _NONE), "image_ref": (str, _NONE), "image_id": (str, _NONE),
    "cmd": (list,), "setup_cmd": (list, _NONE), "exit_code": (int, _NONE), "timed_out": (bool,),
    "message": (str, _NONE), "started_at": (*_NUMBER, _NONE), "finished_at": (*_NUMBER, _NONE),
    "duration_ms": _NUMBER, "attempts": _NUMBER, "retries": _NUMBER, "output_tree": (str, _NONE),
    "bytes": _NUMBER, "files": _NUMBER, "pipex_version": (str, _NONE), "format": (int,),
    "pulled_from": (str, _NONE), "pushed_at": (*_NUMBER, _NONE), "worker": (str, _NONE),
}
_DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(RunMeta) if item.name != "extra"}
_DEFAULTS["status"] = "succeeded"  # converted to RunStatus with the value read
_DEFAULTS["format"] = 1  # a record without the key was written before meta.json had a format
assert set(_KINDS) == set(_DEFAULTS), "every RunMeta field has its JSON types"


def run_id_for(fingerprint: str, status: RunStatus, finished_at: float, *, unstable: bool = False) -> str:
    """The run-id rule: a successful run is its fingerprint; failed and unstable runs get timestamped ids."""
    if status is RunStatus.FAILED:
        return f"{fingerprint}-failed-{int(finished_at * 1000)}"
    if unstable:
        return f"{fingerprint}-unstable-{int(finished_at * 1000)}"
    return fingerprint


@dataclass(frozen=True)
class RunRecord:
    """A stored run: its id, its directory and its meta.json."""

    run_id: str
    location: str  # the run's directory; a string: a plan reads thousands of runs, pathlib costs 10 us a run
    meta: RunMeta

    @property
    def path(self) -> Path:
        """The run's directory."""
        return Path(self.location)

    @property
    def output_tree(self) -> str | None:
        """The tree id of the run's output, if it recorded one."""
        return self.meta.output_tree

    def log(self, stream: str) -> Path:
        """Path of ``stdout.log`` or ``stderr.log``."""
        if stream not in LOG_STREAMS:
            msg = f"unknown log stream {stream!r}: use stdout or stderr"
            raise StoreError(msg)
        return self.path / f"{stream}.log"


def log_tail(path: Path, lines: int = 10) -> list[str]:
    """The last ``lines`` non-blank lines of a log file (its last 8 KiB read); [] if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe directory name, else raise StoreError."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        msg = f"invalid run id {run_id!r}: use letters, digits and _.+=- (at most 200)"
        raise StoreError(msg)
    return run_id


def load_meta(run_id: str, run_dir: Path | str) -> RunMeta:
    """Read ``meta.json`` of a run; RunNotFoundError if absent, StoreCorruptError if unreadable."""
    try:
        data = read_regular_file(f"{run_dir}/meta.json")  # a fifo planted there must not hang us
    except FileNotFoundError:
        if os.path.isdir(run_dir):
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
    return RunMeta.from_dict(meta, run_id)


def record_run(store: Store, run_id: str, meta: RunMeta, logs_dir: Path | None, *, replace: bool = False) -> RunRecord:
    """Store a run: meta.json plus the ``*.log`` files moved from ``logs_dir``.

    Assembled in staging and renamed into runs/<run_id>; if a sound run of
    that id exists it is kept (and returned) and nothing is moved, unless
    ``replace`` (a forced run), which swaps the new run in atomically: a
    reader sees the old or the new record, never a mix or neither.
    """
    check_run_id(run_id)
    tree = meta.output_tree
    if tree is not None and not store.has_tree(tree):
        msg = f"cannot record run {run_id}: its output_tree {tree!r} is not in the store"
        raise StoreError(msg)
    try:
        data = json.dumps(meta.to_dict(), sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    except (TypeError, ValueError) as error:
        msg = f"cannot record run {run_id}: meta is not JSON ({error})"
        raise StoreError(msg) from None
    dest = store.run_path(run_id)
    with store.shared_lock(), store_errors(f"cannot record run {run_id}"):
        existing = None if replace else store.sound_run(run_id)
        if existing is not None:
            return existing
        tmp = Path(tempfile.mkdtemp(prefix=f"run-{owner_token()}-", dir=store.root / "staging"))
        try:
            os.rename(write_temp(data, tmp, sync=False), tmp / "meta.json")
            if logs_dir is not None:
                for log in sorted(Path(logs_dir).glob("*.log")):
                    if log.is_file() and not log.is_symlink():
                        _move_log(log, tmp / log.name)
            for stream in LOG_STREAMS:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(tmp / f"{stream}.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
            syncfs(tmp)  # meta and logs durable before the run's name appears (one commit)
            if replace and dest.is_dir():
                exchange(tmp, dest)  # tmp now holds the old run, removed below
                fsync_dir(dest.parent)
                return store.read_run(run_id)
            if dest.exists():
                # A damaged run of this id (checked above): move it aside, keep the new one.
                rmtree(store.retire(dest))
            if rename_into_place(tmp, dest):
                fsync_dir(dest.parent)
        finally:
            rmtree(tmp)
        return store.read_run(run_id)

def _move_log(src: Path, dest: Path) -> None:
    try:
        os.rename(src, dest)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES):
            raise
        copy_file(os.fsencode(src), os.fsencode(dest), 0o444)
        with contextlib.suppress(OSError):
            os.unlink(src)
        return
    with contextlib.suppress(OSError):
        os.chmod(dest, 0o444)
