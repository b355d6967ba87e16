"""Where a build's steps run: ``.pipex.yml executor:``, then ``PIPEX_EXECUTOR``, then ``--executor`` / ``--scheduler``.

``local`` (the default) runs steps on this machine's Docker engine. ``dask``
and ``slurm`` hand step jobs to a cluster engine people already operate
(``REMOTE.md`` §2); both need a remote cache, through which every input and
output travels. A Dask scheduler off loopback must be reached over TLS:
whoever can submit to it runs code on every worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipex.errors import UsageError

__all__ = ["EXECUTOR_KINDS", "DaskTls", "ExecutorConfig", "executor_config"]

EXECUTOR_KINDS = ("local", "dask", "slurm")
_DEFAULT_SCHEDULER = "tcp://127.0.0.1:8786"


@dataclass(frozen=True)
class DaskTls:
    """The client's certificate and key, and the CA that signed the scheduler's (PEM files)."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class ExecutorConfig:
    """A configured executor: its kind and that kind's settings."""

    kind: str = "local"
    scheduler: str | None = None
    tls: DaskTls | None = None
    partition: str | None = None
    account: str | None = None
    sbatch_args: tuple[str, ...] = ()
    slots: int | None = None
    pipex_command: str = "pipex"

    @property
    def local(self) -> bool:
        """True when steps run on this machine."""
        return self.kind == "local"

    def describe(self) -> str:
        """The kind and where (for messages)."""
        return f"dask at {self.scheduler}" if self.kind == "dask" else self.kind


def executor_config(
    setting: Mapping[str, Any] | None,
    *,
    root: Path,
    kind: str | None = None,
    scheduler: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExecutorConfig:
    """The executor a build uses; UsageError for an unknown kind or an unsafe scheduler.

    ``setting`` is ``.pipex.yml``'s validated ``executor:`` (paths relative
    to ``root``); ``PIPEX_EXECUTOR`` overrides its kind, ``kind`` (``--executor``)
    both; ``scheduler`` (``--scheduler``) overrides the file's and implies dask.
    """
    env = os.environ if environ is None else environ
    raw = dict(setting or {})
    chosen = kind or env.get("PIPEX_EXECUTOR") or ("dask" if scheduler else None) or raw.get("kind") or "local"
    if chosen not in EXECUTOR_KINDS:
        msg = f"unknown executor {chosen!r}: use one of {', '.join(EXECUTOR_KINDS)}"
        raise UsageError(msg)
    tls = None
    if raw.get("tls"):
        files = raw["tls"]
        tls = DaskTls(*(_path(files[name], root) for name in ("ca", "cert", "key")))
    address = scheduler or raw.get("scheduler") or env.get("PIPEX_SCHEDULER")
    if chosen == "dask":
        address = address or _DEFAULT_SCHEDULER
        _check_scheduler(address, tls)
    return ExecutorConfig(
        kind=chosen,
        scheduler=address if chosen == "dask" else None,
        tls=tls,
        partition=raw.get("partition"),
        account=raw.get("account"),
        sbatch_args=tuple(raw.get("sbatchArgs") or ()),
        slots=raw.get("slots"),
        pipex_command=raw.get("pipex") or "pipex",
    )


def _check_scheduler(address: str, tls: DaskTls | None) -> None:
    """tcp:// only on loopback; tls:// with certificates (else anyone who reaches the scheduler runs code)."""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("tcp", "tls"):
        msg = f"invalid Dask scheduler {address!r}: use tls://host:port (or tcp://127.0.0.1:port)"
        raise UsageError(msg)
    host = rest.rsplit(":", 1)[0].strip("[]")
    if scheme == "tcp" and not _loopback(host):
        msg = (
            f"refusing plain tcp to the Dask scheduler at {host}: whoever reaches it runs code on every worker; "
            "use tls://… with executor.tls (README: 'Running on a cluster')"
        )
        raise UsageError(msg)
    if scheme == "tls" and tls is None:
        msg = f"Dask scheduler {address} is tls://: set executor.tls {{ca, cert, key}} in .pipex.yml"
        raise UsageError(msg)
    if tls is not None:
        for path in (tls.ca, tls.cert, tls.key):
            if not path.is_file():
                msg = f"executor.tls: {path} is not a file"
                raise UsageError(msg)


def _loopback(host: str) -> bool:
    import ipaddress  # only a cluster build asks: an all-cached build does not pay for the import

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path(value: str, root: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path
