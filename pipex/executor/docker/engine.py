"""The Docker engine's address, the connection to it, and its errors as one-line PipexErrors."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlparse

from pipex.errors import ContainerError, DockerUnavailableError, ImageError, PipexError

__all__ = [
    "BRIDGE",
    "POLL_SEC",
    "Killed",
    "engine_address",
    "connect",
    "reason",
    "connect_reason",
    "map_error",
    "mapped_errors",
    "ignore_gone",
]

BRIDGE = "bridge"  # the engine's default network: what "allowNetwork" means
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
POLL_SEC = 0.05  # how often a waiting step looks at its cancel event


class Killed(Exception):
    """Raised inside ``run`` when a phase was stopped by timeout or cancel."""


def engine_address(base_url: str | None) -> tuple[str, str]:
    """Return (url, how to name it in a message) for the engine address in use."""
    if base_url:
        return base_url, base_url
    env = os.environ.get("DOCKER_HOST")
    if env:
        return env, f"DOCKER_HOST={env}"
    url = context_host() or DEFAULT_SOCKET
    return url, f"{url} (DOCKER_HOST is not set)"


def connect(base_url: str | None) -> Any:
    """A connected ``docker.APIClient``; DockerUnavailableError when no local engine answers."""
    import docker  # lazily: only a build that runs a step pays for it
    from docker.errors import DockerException

    url, where = engine_address(base_url)
    require_local_engine(url, where)
    try:
        kwargs = docker.utils.kwargs_from_env()
        kwargs["base_url"] = url
        # "auto" asks the engine its API version: one call per executor, and
        # it doubles as the liveness check. Pool size: one streaming request
        # plus short calls per worker thread.
        return docker.APIClient(version="auto", timeout=60, max_pool_size=64, **kwargs)
    except (DockerException, OSError) as error:
        msg = f"cannot connect to the Docker daemon at {where}: {connect_reason(error)}"
        raise DockerUnavailableError(msg) from None


def context_host() -> str | None:
    """The current docker CLI context's endpoint, if one other than the default is set."""
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        host = context.Host if context is not None else None
        return host or None
    except Exception:  # a broken ~/.docker/config.json must not hide the default socket
        return None


def require_local_engine(url: str, where: str) -> None:
    """Bind mounts need an engine that sees this filesystem: refuse a remote one clearly."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "unix", "npipe", "http+unix", "fd"):
        return
    host = parsed.hostname or ""
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0"):
        return
    msg = (
        f"{where} is not a local Docker engine: pipex bind-mounts the store's files into "
        "containers, which needs an engine on this machine (unset DOCKER_HOST or point it at a local socket)"
    )
    raise DockerUnavailableError(msg)


def reason(error: BaseException) -> str:
    """A one-line reason from a docker-py / requests error (they nest and repeat)."""
    text = str(getattr(error, "explanation", None) or error)
    for marker in ("Connection aborted.", "Caused by "):
        text = text.replace(marker, "")
    line = " ".join(text.split())
    return line[:300]


def connect_reason(error: BaseException) -> str:
    """Why a connection failed, in words a user can act on (docker-py nests requests' errors)."""
    text = str(error)
    status = re.search(r"(\d{3}) (?:Client|Server) Error for \S+/version", text)
    if status is not None:
        return f"the server there is not a Docker engine (GET /version answered {status.group(1)})"
    for needle, why in (
        ("No such file or directory", "no socket there (is the daemon running?)"),
        ("FileNotFoundError", "no socket there (is the daemon running?)"),
        ("Connection refused", "connection refused (is the daemon running?)"),
        ("Permission denied", "permission denied (is this user in the docker group?)"),
        ("timed out", "the daemon did not answer in time"),
    ):
        if needle in text:
            return why
    return reason(error)


def map_error(error: BaseException, doing: str) -> PipexError:
    """Turn a docker-py / transport error into a one-line PipexError."""
    from docker.errors import APIError, DockerException, ImageNotFound

    if isinstance(error, ImageNotFound):
        return ImageError(f"{doing}: {reason(error)}")
    if isinstance(error, APIError):
        return ContainerError(f"{doing}: {reason(error)}")
    if isinstance(error, DockerException):  # raised by docker-py itself: a bad argument, not the daemon
        return ContainerError(f"{doing}: {reason(error)}")
    return DockerUnavailableError(f"{doing}: the Docker daemon stopped answering: {connect_reason(error)}")


class mapped_errors:
    """Context manager: docker-py and connection errors leave as one-line PipexErrors."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> Literal[False]:
        if error is None or isinstance(error, (PipexError, Killed)):
            return False
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        if isinstance(error, NotFound) and self._doing.startswith("removing"):
            return False
        if isinstance(error, (DockerException, RequestException, OSError)):
            raise map_error(error, self._doing) from None
        return False


def ignore_gone(call: Callable[[str], Any], container_id: str) -> None:
    from docker.errors import APIError

    try:
        call(container_id)
    except APIError as error:
        if error.status_code not in (404, 409):  # gone, or already stopped
            raise
