"""The remote's layout and its two documents: ``pipex-remote.json`` and a run record.

::

    <prefix>/pipex-remote.json              {"format": 1, "hash": "xxh3-128"}; a newer format is refused
    <prefix>/objects/<oid[:2]>/<oid[2:]>    file bytes (the exec bit lives in the tree entry)
    <prefix>/trees/<tid[:2]>/<tid[2:]>.json the canonical tree bytes, named by their own hash
    <prefix>/runs/<fingerprint>.json        the run record: the only name that is not content-addressed
    <prefix>/jobs/<build>/<step>-<fp16>.json   a cluster build's worker job (pipex.engine.step_job)
    <prefix>/results/<build>/<step>-<fp16>.json a worker's answer, with a failed run's logs (pipex.ops.worker)

A run record (format 1, one JSON object)::

    {"format": 1, "fingerprint": FP, "pushed_at": UNIX, "meta": {meta.json, format 2},
     "logs": {"stdout": LOG, "stderr": LOG}}
    LOG = {"b64": "<the log, base64>"} (under 8 KiB) | {"oid": OID, "size": N}

Logs live inside the record (or as objects it names), never beside it: two
writers of one fingerprint must not mix one run's meta with another's logs.
Everything a record names is content-addressed, so a record that can be read
names only things whose bytes are fixed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from pipex.errors import RemoteError
from pipex.store.objects import is_oid
from pipex.store.runs import RunMeta

__all__ = [
    "REMOTE_FORMAT",
    "FORMAT_KEY",
    "INLINE_LOG_BYTES",
    "RemoteRun",
    "LogRef",
    "object_key",
    "tree_key",
    "run_key",
    "job_key",
    "result_key",
    "format_document",
    "check_format_document",
    "encode_record",
    "decode_record",
]

REMOTE_FORMAT = 1
RECORD_FORMAT = 1
FORMAT_KEY = "pipex-remote.json"
INLINE_LOG_BYTES = 8 * 1024


def object_key(oid: str) -> str:
    """Where object ``oid`` is on the remote."""
    return f"objects/{oid[:2]}/{oid[2:]}"


def tree_key(tree_id: str) -> str:
    """Where tree ``tree_id`` is on the remote."""
    return f"trees/{tree_id[:2]}/{tree_id[2:]}.json"


def run_key(fingerprint: str) -> str:
    """Where the run record of ``fingerprint`` is on the remote."""
    return f"runs/{fingerprint}.json"


def job_key(build_id: str, name: str) -> str:
    """Where a cluster build's worker job ``name`` is shipped (SLURM reads it there)."""
    return f"jobs/{build_id}/{name}.json"


def result_key(build_id: str, name: str) -> str:
    """Where a worker leaves its answer to a job, with a failed run's logs."""
    return f"results/{build_id}/{name}.json"


def format_document() -> bytes:
    """The bytes of ``pipex-remote.json``."""
    return json.dumps({"format": REMOTE_FORMAT, "hash": "xxh3-128"}, sort_keys=True).encode() + b"\n"


def check_format_document(data: bytes, where: str) -> None:
    """Refuse a remote whose format this pipex does not know (RemoteError saying what to do)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or type(doc.get("format")) is not int:
        raise RemoteError(f"remote {where}: {FORMAT_KEY} is not a pipex remote format document")
    if doc["format"] > REMOTE_FORMAT:
        msg = f"remote {where} has format {doc['format']}, newer than this pipex knows ({REMOTE_FORMAT}); upgrade pipex"
        raise RemoteError(msg)
    if doc.get("hash", "xxh3-128") != "xxh3-128":
        raise RemoteError(f"remote {where} uses hash {doc.get('hash')!r}; this pipex knows xxh3-128")


@dataclass(frozen=True)
class LogRef:
    """A log in a run record: inline bytes, or an object."""

    data: bytes | None = None
    oid: str | None = None
    size: int = 0


@dataclass(frozen=True)
class RemoteRun:
    """A run record read from the remote, checked."""

    fingerprint: str
    meta: RunMeta
    pushed_at: float
    logs: dict[str, LogRef]

    @property
    def output_tree(self) -> str:
        """The run's output tree id (a record always has one)."""
        assert self.meta.output_tree is not None
        return self.meta.output_tree


def encode_record(meta: RunMeta, logs: dict[str, LogRef], pushed_at: float) -> bytes:
    """The bytes of ``runs/<fingerprint>.json`` for a successful run."""
    log_docs: dict[str, Any] = {}
    for stream, ref in logs.items():
        if ref.data is not None:
            log_docs[stream] = {"b64": base64.b64encode(ref.data).decode("ascii")}
        else:
            log_docs[stream] = {"oid": ref.oid, "size": ref.size}
    doc = {
        "format": RECORD_FORMAT,
        "fingerprint": meta.fingerprint,
        "pushed_at": pushed_at,
        "meta": meta.to_dict(),
        "logs": log_docs,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_record(data: bytes, fingerprint: str) -> RemoteRun:
    """Check and read a run record fetched for ``fingerprint``; RemoteError naming what is wrong."""

    def bad(why: str) -> RemoteError:
        return RemoteError(f"remote run {fingerprint} is unusable ({why}); it counts as a miss")

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise bad("not JSON") from None
    if not isinstance(doc, dict) or type(doc.get("format")) is not int:
        raise bad("not a run record")
    if doc["format"] > RECORD_FORMAT:
        raise bad(f"record format {doc['format']} is newer than this pipex's")
    if doc.get("fingerprint") != fingerprint:
        raise bad("it names another fingerprint")
    raw_meta = doc.get("meta")
    if not isinstance(raw_meta, dict):
        raise bad("no meta")
    try:
        meta = RunMeta.from_dict(raw_meta, fingerprint)
    except Exception as error:  # StoreCorruptError for a bad output_tree
        raise bad(str(error)) from None
    if not meta.succeeded or meta.fingerprint != fingerprint or not is_oid(meta.output_tree):
        raise bad("not a successful run of this fingerprint with an output tree")
    pushed_at = doc.get("pushed_at")
    if not isinstance(pushed_at, (int, float)) or isinstance(pushed_at, bool):
        raise bad("no push time")
    logs: dict[str, LogRef] = {}
    raw_logs = doc["logs"] if isinstance(doc.get("logs"), dict) else {}
    for stream in ("stdout", "stderr"):
        ref = raw_logs.get(stream)
        if not isinstance(ref, dict):
            continue
        try:
            if "b64" in ref:
                logs[stream] = LogRef(data=base64.b64decode(str(ref["b64"]), validate=True))
            elif is_oid(ref.get("oid")) and type(ref.get("size")) is int and ref["size"] >= 0:
                logs[stream] = LogRef(oid=ref["oid"], size=ref["size"])
        except (binascii.Error, ValueError):
            raise bad(f"its {stream} log is not base64") from None
    return RemoteRun(fingerprint, meta, float(pushed_at), logs)
