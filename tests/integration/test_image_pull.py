"""A missing image is pulled (with progress events) from a registry; an unpullable one is one clear line.

The registry is a minimal Docker Registry v2 server on the loopback interface,
serving the offline busybox image (from `docker save`): the engine really
pulls it over HTTP (127.0.0.0/8 registries are insecure-allowed by default).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipex.events import EventKind

from .build_helpers import BUSYBOX, Project

pytestmark = pytest.mark.docker

_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _image_blobs(image: str) -> tuple[bytes, dict[str, bytes]]:
    """The v2 manifest of ``image`` and every blob it names (config, gzipped layers), by digest."""
    import docker

    client = docker.APIClient()
    try:
        saved = b"".join(client.get_image(image))
    finally:
        client.close()
    blobs: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        entry = json.loads(archive.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        config = archive.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [gzip.compress(archive.extractfile(name).read(), 1) for name in entry["Layers"]]  # type: ignore[union-attr]

    def add(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": add(config)},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": add(layer)}
            for layer in layers
        ],
    }
    return json.dumps(manifest).encode(), blobs


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a read-only registry holding ``pipex-pull/busybox:1``."""
    manifest, blobs = _image_blobs(BUSYBOX)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    stalled = threading.Event()
    # Blobs of a digest no engine has seen: the engine must ask for them, and waits.
    unseen = json.loads(manifest)
    unseen["config"]["digest"] = "sha256:" + hashlib.sha256(os.urandom(16)).hexdigest()
    stall_manifest = json.dumps(unseen).encode()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: bytes, content_type: str, head: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = self.path.split("?")[0]
            if path in ("/v2/", "/v2"):
                return self._send(b"{}", "application/json", head)
            if path in ("/v2/pipex-pull/busybox/manifests/1", f"/v2/pipex-pull/busybox/manifests/{manifest_digest}"):
                return self._send(manifest, _MANIFEST, head)
            if path.startswith("/v2/pipex-pull/stall/manifests/"):
                return self._send(stall_manifest, _MANIFEST, head)
            if path.startswith("/v2/pipex-pull/stall/blobs/"):
                stalled.wait(120)  # a registry that never sends the layer
                return None
            prefix = "/v2/pipex-pull/busybox/blobs/"
            if path.startswith(prefix) and path[len(prefix):] in blobs:
                return self._send(blobs[path[len(prefix):]], "application/octet-stream", head)
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    stalled.set()
    server.shutdown()
    server.server_close()


def _image_id(ref: str) -> str:
    import docker

    client = docker.APIClient()
    try:
        return str(client.inspect_image(ref)["Id"])
    finally:
        client.close()


def _remove_image(ref: str) -> None:
    import docker
    from docker.errors import ImageNotFound

    client = docker.APIClient()
    try:
        client.remove_image(ref, force=True)
    except ImageNotFound:
        pass
    finally:
        client.close()


def test_missing_image_is_pulled_with_progress_then_used(project: Project, registry: str) -> None:
    image = f"{registry}/pipex-pull/busybox:1"
    _remove_image(image)
    try:
        project.write(f"id: pull\nsteps:\n  - {{id: s, image: '{image}', cmd: echo pulled > /output/x}}\n")
        result = project.build()
        assert result.ok, [e.data for e in project.events if e.kind is EventKind.STEP_FAILED]
        assert project.output(result, "s", "x") == "pulled\n"
        pulls = [e.data for e in project.kinds(EventKind.IMAGE_PULL)]
        assert any("Pull complete" in str(p.get("status")) or "Downloaded" in str(p.get("status")) for p in pulls), pulls
        assert pulls[-1] == {"image": image, "status": "ready", "done": True}
        # The pulled image is busybox (same config digest), and its id is what entered the fingerprint.
        meta = project.meta(result, "s")
        assert meta["image_id"] == _image_id(BUSYBOX)
        assert meta["image_id"] in json.dumps(meta["fingerprint_doc"])
    finally:
        _remove_image(image)


def test_an_unpullable_image_fails_its_step_only_with_events_and_a_record(project: Project, registry: str) -> None:
    image = f"{registry}/pipex-pull/absent:1"
    project.write(
        f"""\
        id: nopull
        steps:
          - {{id: s, image: '{image}', cmd: 'true'}}
          - {{id: after, image: {BUSYBOX}, inputs: [{{step: s}}], cmd: 'true'}}
          - {{id: other, image: {BUSYBOX}, cmd: echo other > /output/o}}
        """
    )
    result = project.build(keep_going=True)
    assert not result.ok
    assert project.outcomes(result) == {"s": "failed", "after": "skipped", "other": "succeeded"}
    (failed,) = project.kinds(EventKind.STEP_FAILED)
    message = failed.data["reason"]
    assert message.startswith(f"image '{image}' not found locally and cannot be pulled") and "\n" not in message
    assert project.kinds(EventKind.PIPELINE_FAILED), "an NDJSON consumer must see the build end"
    from pipex import api

    shown = {s.step: s for s in api.show("nopull", store=project.store).steps}
    assert shown["s"].state == "failed"


def test_ctrl_c_during_a_stalled_pull_acts_at_once(tmp_path: Path, registry: str) -> None:
    import signal
    import subprocess
    import time

    from .cli_helpers import Cli

    image = f"{registry}/pipex-pull/stall:1"
    cli = Cli(tmp_path / "project", tmp_path / "store")
    cli.write(f"id: stall\nsteps:\n  - {{id: s, image: '{image}', cmd: 'true'}}\n")
    process = cli.start("build", "--json")
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    for line in process.stdout:
        if '"IMAGE_PULL"' in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("Ctrl-C waited for the pull") from None
    assert code == 130, process.stderr.read() if process.stderr else ""
    assert time.monotonic() - sent < 5
