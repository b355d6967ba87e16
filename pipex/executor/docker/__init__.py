"""The Docker engine executor: runs one step in one container through docker-py.

This package is the only place in pipex that imports ``docker``: ``engine``
(address, connection, errors), ``images``, ``container`` (what a step's
container is made of), ``phases`` (direct and keeper), ``streams`` (logs),
``ownership`` (giving files back to the caller); ``DockerExecutor`` here
ties them together and owns the leftovers.

Design (measured with ``bench/step_overhead_baseline``: 20 trivial steps
against 20 bare create+start+wait+remove; on this machine bare ≈ 180 ms/step,
direct 1.01-1.04×, direct with ownership wrapper 1.02×, keeper 1.5×):

* Low-level ``docker.APIClient`` only: the high-level ``containers.create``
  adds an inspect per call, and per-step API calls are the overhead budget.
  ``docker`` is imported on first connection, so ``import pipex.executor``
  (and an all-cached build) never loads it. A ref passed to `ensure_image`
  before, or an image id (``sha256:…``), saves the image lookup in `run`
  and pins the image whose id entered the fingerprint.
* Two ways to run a step, chosen per invocation:

  - *direct* (no setup phase): ``cmd`` is the container's main process:
    create, [put_archive], start, logs (follow), wait, remove — the bare
    docker cycle plus one streamed logs request.
  - *keeper* (a setup phase, or ownership to fix for a step with its own
    non-root ``user``): the main process is an idle ``sh`` loop running as
    root; setup and ``cmd`` are exec'd as the step's user, so the network can
    be disconnected between them and root execs can kill and chown at the
    end. Each exec costs ~40 ms, hence not the default. Needs ``sh``.

* Ownership (NOTE): containers run as root unless the step sets ``user``, so
  files they write into the bind-mounted output belong to root. When pipex
  itself runs as root nothing is needed. Otherwise the output path and rw
  caches are ``chown -R``'d to ``Invocation.owner`` (default: this process's
  uid/gid) before the container goes: in direct mode by an ``sh`` wrapper
  around ``cmd`` (it also traps the SIGTERM pipex sends on timeout/cancel,
  kills ``cmd`` and chowns before exiting), in keeper mode by a root exec.
  Running steps as the caller's uid instead would break steps that install
  packages as root. An image without ``sh``/``chown`` needs pipex run as root.
* ``cmd`` is the full argv in both modes: the image's ENTRYPOINT is replaced
  (exec ignores it anyway), so a step means the same thing in either mode.
* A container the engine refuses to start (no such command, unknown user)
  is a failed step (127 / 126, message "cannot start: …"), not a pipex error.
* Network: ``network_mode="none"`` unless a phase needs it; a setup with
  network on an isolated step starts on the default bridge and is
  disconnected before ``cmd`` (and an isolated setup of a networked step is
  disconnected until ``cmd``). Network-enabled phases get the proxy variables
  and, when configured, the CA bundle mounted read-only with the CA variables
  pointing at it (setup: exec env; run: container env). NOTE: the bundle's
  mount cannot be removed from a running container, so an isolated run phase
  after a networked setup can still see the (public) file, but no variable
  points at it and it never enters a fingerprint; likewise the isolated setup
  of a networked step inherits the run phase's container env (proxy and CA
  variables), though it has no network.
* Secrets: each is written to a 0400 file in a private (0700) temp dir,
  bind-mounted read-only at ``/run/secrets/<name>``, and deleted afterwards.
* Logs: the multiplexed stream is read on a pump thread, appended to the log
  files chunk by chunk (flushed, so they grow while the step runs) and split
  into lines for ``on_log``; memory stays bounded whatever the output size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipex.errors import PipexError
from pipex.executor.base import ExecutionResult, Invocation, NetworkConfig, Phase
from pipex.executor.docker.container import (
    KEEPER_CMD,
    check_host_paths,
    check_runtime,
    create_container,
    put_sources,
    write_secrets,
)
from pipex.executor.docker.engine import POLL_SEC, connect, mapped_errors
from pipex.executor.docker.images import EngineImages
from pipex.executor.docker.ownership import numeric_uid
from pipex.executor.docker.phases import cancelled, kill_processes, run_direct, run_keeper, to_result
from pipex.executor.docker.streams import LogSink

__all__ = ["DockerExecutor", "KEEPER_CMD"]


class DockerExecutor:
    """The Docker engine executor; connects on first use; thread-safe."""

    def __init__(self, network: NetworkConfig | None = None, *, base_url: str | None = None) -> None:
        """Prepare an executor; ``base_url`` overrides DOCKER_HOST / the current context."""
        self._network = network or NetworkConfig()
        self._base_url = base_url
        self._api: Any = None
        # Reentrant: stop_all may run in a signal handler on a thread that holds it.
        self._lock = threading.RLock()
        self._active: dict[str, threading.Event] = {}  # container id -> its stop request
        self._stopping = threading.Event()
        self.images = EngineImages(lambda: self.api)

    # -- connection -------------------------------------------------------

    @property
    def api(self) -> Any:
        """The connected ``docker.APIClient``; DockerUnavailableError when no engine answers."""
        if self._api is None:
            with self._lock:
                if self._api is None:
                    self._api = connect(self._base_url)
        return self._api

    def close(self) -> None:
        """Release the connection to the engine."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- images -----------------------------------------------------------

    def resolve_images(self, refs: Iterable[str]) -> dict[str, str | None]:
        """Map each ref to its local image id (None when absent), in one ``images`` call."""
        return self.images.resolve_images(refs)

    def ensure_image(
        self, ref: str, progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
    ) -> str:
        """Return the local image id of ref, pulling it (reporting progress) when absent; a cancel stops a pull."""
        return self.images.ensure_image(ref, progress, cancel)

    # -- leftovers and Ctrl-C ---------------------------------------------

    def remove_leftovers(
        self, labels: Mapping[str, str], keep: Callable[[Mapping[str, str]], bool] | None = None
    ) -> int:
        """Remove containers carrying all these labels (left by killed processes); return how many.

        ``keep(container_labels)`` spares a container (one whose starting process still lives).
        """
        if not labels:
            msg = "remove_leftovers needs at least one label (it would remove every container)"
            raise ValueError(msg)
        from docker.errors import NotFound

        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with mapped_errors("listing leftover containers"):
            containers = self.api.containers(all=True, filters=filters)
        removed = 0
        owner = (os.geteuid(), os.getegid())
        for container in containers:
            if container["Id"] in self._active:
                continue  # ours and still running: not a leftover
            if keep is not None and keep(container.get("Labels") or {}):
                continue
            if owner[0] != 0 and container.get("State") == "running":
                # A killed build's step may have written root-owned files into its
                # output and caches: give them back first, or the caller can never
                # delete them (a force-remove is a SIGKILL: the wrapper cannot chown).
                paths = [m["Destination"] for m in container.get("Mounts") or () if m.get("Type") == "bind" and m.get("RW")]
                if paths:
                    kill_processes(self.api, container["Id"], owner, paths)
            try:
                with mapped_errors("removing a leftover container"):
                    self.api.remove_container(container["Id"], force=True, v=True)
                removed += 1
            except NotFound:
                pass  # someone else removed it meanwhile
        # Setup snapshots of hardened steps (see _run_hardened_after_setup) carry the same labels.
        with mapped_errors("listing leftover images"):
            images = self.api.images(filters=filters)
        for image in images:
            if keep is not None and keep(image.get("Labels") or {}):
                continue
            with contextlib.suppress(Exception):  # in use by a live container, or gone
                self.api.remove_image(image["Id"], force=True)
        return removed

    def stop_all(self) -> None:
        """Stop and remove every container this executor started; safe from a signal handler thread.

        Each running step is asked to stop (its own thread kills the container,
        fixes ownership and removes it); whatever is still there after a grace
        period is force-removed here.
        """
        self._stopping.set()
        with self._lock:
            requests = list(self._active.values())
        for request in requests:
            request.set()
        deadline = time.monotonic() + 10
        while self._active and time.monotonic() < deadline:
            time.sleep(POLL_SEC)
        if self._api is None:
            return
        for container_id in list(self._active):
            try:
                self._api.remove_container(container_id, force=True, v=True)
            except Exception:  # best effort on the way out; the next build's remove_leftovers retries
                pass

    # -- running a step ---------------------------------------------------

    def run(self, invocation: Invocation, cancel: threading.Event) -> ExecutionResult:
        """Run one step to completion in a fresh container and remove it; thread-safe.

        After `stop_all`, every call returns a cancelled result without starting anything.
        A hardened step (``readOnlyRootfs``, ``capDrop``) with a setup phase runs
        in two containers: see `_run_hardened_after_setup`.
        """
        if invocation.setup_cmd and (invocation.read_only_rootfs or invocation.cap_drop):
            return self._run_hardened_after_setup(invocation, cancel)
        return self._run_once(invocation, cancel)[0]

    def _run_hardened_after_setup(self, inv: Invocation, cancel: threading.Event) -> ExecutionResult:
        """Setup in an unhardened container, committed; then ``cmd`` hardened in a container of that snapshot.

        # NOTE: a read-only root filesystem and dropped capabilities hold for a
        # whole container, yet installs (pip, npm, apt) must write the image and
        # may need capabilities. So the setup phase (root, writable, default
        # capabilities, still no-new-privileges) ends with a commit, and the run
        # phase starts from that snapshot with every hardening asked for. The
        # snapshot is removed afterwards; one left by a killed build carries the
        # build's labels and goes with its containers.
        """
        started_at = time.time()
        clock = time.monotonic()
        image_id = self.images.image_id(inv.image)

        def setup_phase_only(phase: Phase) -> None:
            if phase is Phase.SETUP and inv.on_phase is not None:
                inv.on_phase(phase)

        setup_inv = dataclasses.replace(
            inv, cmd=("sh", "-c", "exit 0"), read_only_rootfs=False, cap_drop=(), network=False, on_phase=setup_phase_only
        )
        setup, snapshot = self._run_once(setup_inv, cancel, commit=True)
        if not setup.ok or snapshot is None:
            return dataclasses.replace(setup, image_id=image_id, started_at=started_at)
        try:
            timeout = inv.timeout_sec
            if timeout is not None:
                timeout = max(0.001, timeout - (time.monotonic() - clock))
            run_inv = dataclasses.replace(
                inv, image=snapshot, setup_cmd=None, setup_lock=None, setup_network=False, sources=(), timeout_sec=timeout
            )
            result, _ = self._run_once(run_inv, cancel)
        finally:
            with contextlib.suppress(Exception):  # best effort; a leftover goes with remove_leftovers
                self.api.remove_image(snapshot, force=True)
        message = result.message
        if result.timed_out and inv.timeout_sec is not None:
            message = f"timed out after {inv.timeout_sec:g}s"
        return dataclasses.replace(result, image_id=image_id, started_at=started_at, message=message)

    def _run_once(
        self, invocation: Invocation, cancel: threading.Event, *, commit: bool = False
    ) -> tuple[ExecutionResult, str | None]:
        """Run ``invocation`` in one fresh container; with ``commit``, snapshot it (when it succeeded) before removal."""
        started_at = time.time()
        inv = invocation
        snapshot: str | None = None
        if self._stopping.is_set() or cancel.is_set():
            return to_result(cancelled(None), "", started_at), None
        check_host_paths(inv)
        image_id = self.images.image_id(inv.image)
        owner = inv.owner or (os.geteuid(), os.getegid())
        fix_owner = owner[0] != 0
        # A step's own non-root user cannot chown: only a root exec can then fix ownership.
        keeper = bool(inv.setup_cmd) or (fix_owner and bool(inv.user) and numeric_uid(inv.user) != 0)
        wrap_owner = owner if fix_owner and not keeper else None
        secrets_dir = write_secrets(inv) if inv.secrets else None
        stop = threading.Event()  # set by stop_all
        container_id: str | None = None
        try:
            container_id = create_container(self.api, self._network, inv, image_id, keeper, secrets_dir, wrap_owner)
            if inv.runtime:
                check_runtime(self.api, container_id, inv)
            with self._lock:
                self._active[container_id] = stop
            if self._stopping.is_set():
                stop.set()
            if inv.sources:
                put_sources(self.api, container_id, inv)
            with LogSink(inv) as sink:
                if keeper:
                    result = run_keeper(self.api, self._network, container_id, inv, cancel, stop, sink, owner if fix_owner else None)
                else:
                    result = run_direct(self.api, container_id, inv, cancel, stop, sink, wrap_owner is not None)
            if commit and result.exit_code == 0 and not (cancel.is_set() or stop.is_set()):
                with mapped_errors(f"saving the setup of step '{inv.step_id}'"):
                    snapshot = str(self.api.commit(container_id, conf={"Labels": dict(inv.labels)})["Id"])
        except PipexError:
            if not (cancel.is_set() or stop.is_set()):
                raise
            # Stopped under our feet (stop_all removed the container): a cancel, not an error.
            result = cancelled(None)
        finally:
            if container_id is not None:
                self._remove(container_id)
            if secrets_dir is not None:
                shutil.rmtree(secrets_dir, ignore_errors=True)
        return to_result(result, image_id, started_at), snapshot

    def _remove(self, container_id: str) -> None:
        """Remove the container (force: it may still run); forget it."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except Exception:  # NOTE: removal failures must not hide the step's result; remove_leftovers retries
            pass
        finally:
            with self._lock:
                self._active.pop(container_id, None)
