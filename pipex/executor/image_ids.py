"""Image reference -> local image id, in one read-only GET to the Docker socket (for the planner).

Why not docker-py: importing it costs ~110 ms, and a no-op ``pipex plan``
must finish in ~150 ms in total. The planner only needs one read-only call,
``GET /images/json`` (every local image with its tags and repo digests), so
this module speaks HTTP/1.1 over the unix socket with the standard library's
``socket`` (``http.client`` alone costs ~27 ms of imports). It never writes to
the daemon. Anything it cannot reach this way -- ``DOCKER_HOST`` with
``tcp://``/``ssh://``, or a non-default Docker context -- is handed to the
executor's docker-py resolver, imported only then.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from pipex.errors import DockerUnavailableError
from pipex.executor.image_reference import images_by_ref, lookup, normalize_ref

__all__ = ["default_image_resolver", "socket_path", "images_by_ref", "normalize_ref"]

_DEFAULT_SOCKET = "/var/run/docker.sock"
_TIMEOUT_SEC = 10.0


def socket_path(environ: dict[str, str] | None = None) -> str | None:
    """Return the daemon's unix socket path, or ``None`` when only docker-py can find the daemon."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST")
    if host:
        return host[len("unix://") :] if host.startswith("unix://") else None
    context = env.get("DOCKER_CONTEXT")
    if context and context != "default":
        return None
    config_dir = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(config_dir, "config.json"), "rb") as handle:
            current = json.load(handle).get("currentContext")
    except (OSError, ValueError, AttributeError):
        current = None
    if current and current != "default":
        return None
    return _DEFAULT_SOCKET


def default_image_resolver(refs: list[str]) -> dict[str, str | None]:
    """Return ``{ref: image id or None if not present locally}`` in one daemon call.

    Raises DockerUnavailableError when no daemon answers.
    """
    path = socket_path()
    if path is None:
        # A remote daemon or a named context: only docker-py knows how to reach it.
        from pipex.executor.docker import DockerExecutor

        try:
            return dict(DockerExecutor().resolve_images(list(refs)))
        except Exception as error:  # docker-py raises many types for "no daemon"
            msg = f"cannot reach Docker to resolve image ids: {error}"
            raise DockerUnavailableError(msg) from error
    images = _get_json(path, "/images/json")
    index = images_by_ref(images)
    return {ref: lookup(index, ref) for ref in refs}


def _get_json(path: str, url: str) -> Any:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_TIMEOUT_SEC)
    try:
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode("ascii"))
        chunks = []
        expected = None  # header + Content-Length, once known: do not wait for a close that may not come
        received = 0
        while expected is None or received < expected:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
            received += len(data)
            if expected is None:
                expected = _expected_size(b"".join(chunks))
    except OSError as error:
        msg = f"cannot reach Docker at unix://{path}: {error.strerror or error}"
        raise DockerUnavailableError(msg) from None
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        msg = f"Docker at unix://{path} answered {lines[0]!r} to GET {url}"
        raise DockerUnavailableError(msg)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    try:
        return json.loads(body)
    except ValueError as error:
        msg = f"Docker at unix://{path} sent invalid JSON for GET {url}: {error}"
        raise DockerUnavailableError(msg) from None


def _expected_size(raw: bytes) -> int | None:
    """Header size + Content-Length when the header is complete and has one; else None."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    for line in raw[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return end + 4 + int(value.strip())
            except ValueError:
                return None
    return None


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = end + 2
        out.append(body[start : start + size])
        pos = start + size + 2
