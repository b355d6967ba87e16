"""A step's container: what it is made of (mounts, env, network, hardening), its sources, its secrets.

``container_spec`` is a pure function of the invocation; ``create_container``
hands it to the engine. Bind mounts use the Mounts API (not ``src:dst:mode``
strings), which also takes host paths that contain ':'.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipex.errors import ContainerError, HostPathError
from pipex.executor.base import Invocation, NetworkConfig
from pipex.executor.docker.engine import BRIDGE, mapped_errors
from pipex.executor.docker.ownership import numeric_uid, owning_cmd
from pipex.executor.network import CONTAINER_CA_PATH, network_env

__all__ = [
    "KEEPER_CMD",
    "ContainerSpec",
    "container_spec",
    "create_container",
    "check_runtime",
    "put_sources",
    "check_host_paths",
    "write_secrets",
]

#: The keeper's idle main process; exec'd processes do the work.
KEEPER_CMD = ("sh", "-c", "while :; do sleep 3600; done")
_SPOOL_MAX = 16 << 20  # sources archives up to this size stay in memory


@dataclass(frozen=True)
class ContainerSpec:
    """The container of one step: bind mounts (host, container, read-only), entrypoint, env, user, host config."""

    binds: tuple[tuple[str, str, bool], ...]
    entrypoint: tuple[str, ...]
    environment: dict[str, str]
    user: str
    host_config: dict[str, Any]


def container_spec(
    network: NetworkConfig, inv: Invocation, keeper: bool, secrets_dir: Path | None, wrap_owner: tuple[int, int] | None
) -> ContainerSpec:
    """What the step's container is made of: a pure function of the invocation (tested without a daemon)."""
    needs_network = inv.network or (bool(inv.setup_cmd) and inv.setup_network)
    # (host path, container path, read-only) in mount order. Not a dict keyed by
    # host path: two inputs with identical output share one checkout and must
    # both be mounted. The Mounts API (not "src:dst:mode" strings) also takes
    # host paths that contain ':'.
    binds: list[tuple[str, str, bool]] = [(str(inv.output_dir), inv.output_path, False)]
    for mount in inv.mounts:
        binds.append((str(mount.source), mount.target, mount.read_only))
    if needs_network and network.ca_bundle is not None:
        if not network.ca_bundle.is_file():
            # The engine would create a directory there and mount it.
            msg = f"CA bundle '{network.ca_bundle}' (caBundle in .pipex.yml) is not a file"
            raise HostPathError(msg)
        binds.append((str(network.ca_bundle), CONTAINER_CA_PATH, True))
    if secrets_dir is not None:
        for secret in inv.secrets:
            binds.append((str(secrets_dir / secret.name), f"/run/secrets/{secret.name}", True))
    env = dict(inv.env)
    if inv.network:
        env.update(network_env(network))
    host_config: dict[str, Any] = {
        "network_mode": BRIDGE if needs_network else "none",
        "security_opt": ["no-new-privileges"],
        "read_only": inv.read_only_rootfs,
    }
    if inv.cap_drop:
        host_config["cap_drop"] = list(inv.cap_drop)
    if inv.runtime:
        host_config["runtime"] = inv.runtime
    if inv.cpus is not None:
        host_config["nano_cpus"] = int(inv.cpus * 1e9)
    if inv.memory is not None:
        host_config["mem_limit"] = inv.memory
    if inv.pids is not None:
        host_config["pids_limit"] = inv.pids
    return ContainerSpec(
        binds=tuple(binds),
        entrypoint=tuple(KEEPER_CMD if keeper else owning_cmd(inv, wrap_owner)),
        environment=env,
        # The keeper runs as root so its root execs keep the capabilities to
        # chown; setup and cmd are exec'd as the step's user instead.
        user="" if keeper else (inv.user or ""),
        host_config=host_config,
    )


def create_container(
    api: Any,
    network: NetworkConfig,
    inv: Invocation,
    image_id: str,
    keeper: bool,
    secrets_dir: Path | None,
    wrap_owner: tuple[int, int] | None,
) -> str:
    """Create the step's container (not started); return its id."""
    from docker.types import Mount as DockerMount

    spec = container_spec(network, inv, keeper, secrets_dir, wrap_owner)
    mounts = [DockerMount(target, source, type="bind", read_only=ro) for source, target, ro in spec.binds]
    with mapped_errors(f"creating the container of step '{inv.step_id}'"):
        created = api.create_container(
            image_id,
            entrypoint=list(spec.entrypoint),
            command=[],
            environment=spec.environment,
            user=spec.user,
            working_dir=inv.workdir,
            labels=dict(inv.labels),
            host_config=api.create_host_config(mounts=mounts, **spec.host_config),
            network_disabled=False,
            stdin_open=False,
            tty=False,
        )
    return str(created["Id"])


def check_runtime(api: Any, container_id: str, inv: Invocation) -> None:
    """Fail the step if the engine created the container under another runtime than asked (an API may ignore it)."""
    with mapped_errors(f"inspecting the container of step '{inv.step_id}'"):
        host = api.inspect_container(container_id).get("HostConfig") or {}
    got = host.get("Runtime") or "the default runtime"
    if got != inv.runtime:
        msg = (
            f"step '{inv.step_id}': the engine ignored runtime '{inv.runtime}' and would run it under {got}; "
            "refusing to run it unsandboxed"
        )
        raise ContainerError(msg)


def put_sources(api: Any, container_id: str, inv: Invocation) -> None:
    """Copy the step's sources into the (created, not started) container with one put_archive."""
    # A spooled file keeps small trees in memory and spills big ones to disk.
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as buffer:
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for host, target in inv.sources:
                tar.add(str(host), arcname=target.lstrip("/"), filter=root_owned)
        size = buffer.tell()
        buffer.seek(0)
        # Small archives go as bytes; big ones are streamed from the spilled file.
        data: Any = buffer.read() if size <= _SPOOL_MAX else buffer
        with mapped_errors(f"copying sources into the container of step '{inv.step_id}'"):
            ok = api.put_archive(container_id, "/", data)
    if not ok:
        msg = f"step '{inv.step_id}': the engine refused to copy the sources in"
        raise ContainerError(msg)


def check_host_paths(inv: Invocation) -> None:
    """Refuse missing host paths: the engine would silently create them (as root) and mount them empty."""
    for mount in inv.mounts:
        if not mount.source.exists():
            msg = f"step '{inv.step_id}': host path '{mount.source}' (for {mount.target}) does not exist"
            raise HostPathError(msg)
    for host, target in inv.sources:
        if not host.exists():
            msg = f"step '{inv.step_id}': source '{host}' (for {target}) does not exist"
            raise HostPathError(msg)
    if not inv.output_dir.is_dir():
        msg = f"step '{inv.step_id}': output staging dir '{inv.output_dir}' does not exist"
        raise HostPathError(msg)


def write_secrets(inv: Invocation) -> Path:
    """Write each secret to a 0400 file in a fresh 0700 dir; the caller deletes the dir."""
    directory = Path(tempfile.mkdtemp(prefix="pipex-secrets-", dir=inv.scratch_dir))
    uid = numeric_uid(inv.user)
    for secret in inv.secrets:
        if "/" in secret.name or secret.name in ("", ".", ".."):
            shutil.rmtree(directory, ignore_errors=True)
            msg = f"step '{inv.step_id}': invalid secret name '{secret.name}'"
            raise ContainerError(msg)
        path = directory / secret.name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret.value)
        if inv.user and uid is None:
            # NOTE: a named user's uid is only known inside the image; the 0700
            # host dir still hides the file from other host users.
            os.chmod(path, 0o444)
        elif uid is not None and uid != os.geteuid() and os.geteuid() == 0:
            os.chown(path, uid, -1)
    return directory


def root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Sources enter the container owned by root, as an image's own files are."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
