"""``pipex worker run-job JOB`` and ``pipex worker check``: a worker's two commands, outside any engine.

``JOB`` is a JSON file, or an ``s3://bucket/prefix/jobs/<build>/<key>.json``
key that SLURM's wrapper names (the answer then goes beside it, to
``results/<build>/<key>.json``: SLURM's exit code is not trusted).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipex import __version__
from pipex.errors import PipexError, RemoteError, UsageError

__all__ = ["run_job_command", "WorkerCheck", "worker_check"]


def run_job_command(source: str, *, endpoint: str | None = None, region: str | None = None) -> dict[str, Any]:
    """Run the worker job at ``source`` (file or s3 key) here; SIGTERM/SIGINT stop its container. Returns the answer."""
    from pipex.ops.worker import run_worker_job

    doc, answer_to = _read_job(source, endpoint, region)
    cancel = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: cancel.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        answer = run_worker_job(doc, cancel=cancel, engine_name=os.environ.get("SLURM_JOB_ID"))
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if answer_to is not None:
        blobs, key = answer_to
        blobs.put(key, json.dumps(answer, sort_keys=True).encode())
    return answer


def _read_job(source: str, endpoint: str | None, region: str | None) -> tuple[dict[str, Any], Any]:
    if not source.startswith("s3://"):
        try:
            return json.loads(Path(source).read_text()), None
        except OSError as error:
            raise UsageError(f"cannot read worker job {source}: {error.strerror or error}") from None
        except ValueError as error:
            raise UsageError(f"worker job {source} is not JSON: {error}") from None
    from pipex.ops.worker import env_without_remote
    from pipex.remote.config import remote_config
    from pipex.remote.layout import result_key
    from pipex.remote.s3 import S3Blobs

    head, marker, rest = source.partition("/jobs/")
    build, _, name = rest.partition("/")
    if not marker or not build or not name.endswith(".json"):
        raise UsageError(f"invalid worker job key {source!r}: expected s3://bucket/prefix/jobs/<build>/<key>.json")
    setting = {"url": head, **({"endpoint": endpoint} if endpoint else {}), **({"region": region} if region else {})}
    config = remote_config(setting, environ=env_without_remote())
    assert config is not None
    blobs = S3Blobs(config)
    data = blobs.get(f"jobs/{rest}")
    if data is None:
        raise UsageError(f"worker job {source} is not on the remote")
    try:
        doc = json.loads(data)
    except ValueError as error:
        raise UsageError(f"worker job {source} is not JSON: {error}") from None
    return doc, (blobs, result_key(build, name[: -len(".json")]))


@dataclass
class WorkerCheck:
    """``pipex worker check``: each check's name -> (ok, detail)."""

    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if nothing blocks running step jobs here."""
        return all(ok for ok, _ in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"ok": self.ok, "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in self.checks.items()}}


def worker_check(*, remote: str | None = None, images: Sequence[str] = (), endpoint: str | None = None) -> WorkerCheck:
    """Check this machine can run step jobs: Docker, pipex version, store, remote, images."""
    from pipex.executor.docker import DockerExecutor
    from pipex.ops.worker import worker_store

    report = WorkerCheck()
    report.checks["pipex"] = (True, __version__)
    executor = DockerExecutor()
    try:
        version = executor.api.version().get("Version", "?")
        report.checks["docker"] = (True, f"engine {version}")
        if images:
            found = executor.resolve_images(images)
            missing = [ref for ref, image in found.items() if image is None]
            report.checks["images"] = (not missing, f"missing: {', '.join(missing)}" if missing else f"{len(found)} present")
    except PipexError as error:
        report.checks["docker"] = (False, str(error).splitlines()[0])
    finally:
        executor.close()
    try:
        store = worker_store(os.environ.get("PIPEX_WORKER_NAME"))
        report.checks["store"] = (os.access(store.root, os.W_OK), str(store.root))
    except PipexError as error:
        report.checks["store"] = (False, str(error).splitlines()[0])
    url = remote or os.environ.get("PIPEX_REMOTE")
    if url:
        report.checks["remote"] = _check_remote(url, endpoint)
    return report


def _check_remote(url: str, endpoint: str | None) -> tuple[bool, str]:
    from pipex.remote.cache import RemoteCache
    from pipex.remote.config import remote_config

    try:
        config = remote_config({"url": url, **({"endpoint": endpoint} if endpoint else {})})
        assert config is not None
        cache = RemoteCache(config)
        cache.check_format()
        return True, config.describe()
    except (RemoteError, UsageError) as error:
        return False, str(error).splitlines()[0]
