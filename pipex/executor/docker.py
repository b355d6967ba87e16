"""Runs one step in one container through docker-py: the only module in pipex that imports docker.

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
import re
import shlex
import shutil
import socket as socketlib
import struct
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from pipex.errors import (
    ContainerError,
    DockerUnavailableError,
    HostPathError,
    InterruptedBuild,
    ImageError,
    PipexError,
    StoreError,
)
from pipex.executor.base import (
    CANCELLED_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
    ExecutionResult,
    Invocation,
    NetworkConfig,
    Phase,
)
from pipex.executor.network import CONTAINER_CA_PATH, network_env
from pipex.executor.image_reference import images_by_ref, lookup

__all__ = ["DockerExecutor", "KEEPER_CMD"]

#: The keeper's idle main process; exec'd processes do the work.
KEEPER_CMD = ("sh", "-c", "while :; do sleep 3600; done")
#: Kills everything but PID 1 (the keeper, immune to SIGKILL from inside its
#: namespace), then gives the output and caches to the caller: owner, and
#: owner read/write (a step may leave mode 000 files, which the caller could
#: then neither read nor remove). Arguments: owner, then the paths. Used when
#: a step ends, times out or is cancelled: nothing of it may go on writing.
_KILL_AND_CHOWN = 'kill -9 -1 2>/dev/null; chown -R "$0" "$@" 2>/dev/null; chmod -R u+rwX "$@" 2>/dev/null; true'
#: Main process wrapping ``cmd`` when the caller is not root: run it, then give
#: the output and caches to the caller; on SIGTERM (timeout/cancel) kill
#: everything else first. {owner} and {paths} are shell-quoted by `_owning_cmd`.
_OWNING_WRAPPER = (
    # The trap comes first so a SIGTERM right after start is not lost (PID 1
    # ignores untrapped signals); the background child gets default handlers.
    "trap 'kill -9 -1 2>/dev/null; chown -R {owner} {paths} 2>/dev/null; chmod -R u+rwX {paths} 2>/dev/null; exit 143' TERM; "
    '"$@" & child=$!; '
    # When cmd ends, whatever it left running in the background dies *before* the
    # chown: else it could go on writing root-owned files nobody may remove.
    "wait $child; rc=$?; kill -9 -1 2>/dev/null; chown -R {owner} {paths} 2>/dev/null; chmod -R u+rwX {paths} 2>/dev/null; exit $rc"
)
_WRAPPER_GRACE_SEC = 10.0  # how long the wrapper may take to kill and chown before SIGKILL
_BRIDGE = "bridge"  # the engine's default network: what "allowNetwork" means
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_MAX_LINE = 1 << 20  # an on_log line longer than this is cut, so memory stays bounded
_SPOOL_MAX = 16 << 20  # sources archives up to this size stay in memory
_READ_CHUNK = 64 * 1024
_POLL_SEC = 0.05  # how often a waiting step looks at its cancel event
_UNSEEN_STREAM_SLACK_NS = 1_000_000_000  # a stream the follow never saw: re-read from this long before the other's mark


class _Killed(Exception):
    """Raised inside ``run`` when a phase was stopped by timeout or cancel."""


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
        # ref -> id from ensure_image: run() then uses the very image whose id
        # entered the fingerprint, and saves an inspect per step.
        self._ensured: dict[str, str] = {}

    # -- connection -------------------------------------------------------

    def _where(self) -> tuple[str, str]:
        """Return (url, how to name it in a message) for the engine address in use."""
        if self._base_url:
            return self._base_url, self._base_url
        env = os.environ.get("DOCKER_HOST")
        if env:
            return env, f"DOCKER_HOST={env}"
        url = _context_host() or _DEFAULT_SOCKET
        return url, f"{url} (DOCKER_HOST is not set)"

    @property
    def api(self) -> Any:
        """The connected ``docker.APIClient``; DockerUnavailableError when no engine answers."""
        if self._api is None:
            with self._lock:
                if self._api is None:
                    self._api = self._connect()
        return self._api

    def _connect(self) -> Any:
        import docker  # lazily: only a build that runs a step pays for it
        from docker.errors import DockerException

        url, where = self._where()
        _require_local_engine(url, where)
        try:
            kwargs = docker.utils.kwargs_from_env()
            kwargs["base_url"] = url
            # "auto" asks the engine its API version: one call per executor, and
            # it doubles as the liveness check. Pool size: one streaming request
            # plus short calls per worker thread.
            return docker.APIClient(version="auto", timeout=60, max_pool_size=64, **kwargs)
        except (DockerException, OSError) as error:
            msg = f"cannot connect to the Docker daemon at {where}: {_connect_reason(error)}"
            raise DockerUnavailableError(msg) from None

    def close(self) -> None:
        """Release the connection to the engine."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- images -----------------------------------------------------------

    def resolve_images(self, refs: Iterable[str]) -> dict[str, str | None]:
        """Map each ref to its local image id (None when absent), in one ``images`` call."""
        with _mapped_errors("listing images"):
            index = images_by_ref(self.api.images())
        return {ref: lookup(index, ref) for ref in refs}

    def ensure_image(
        self, ref: str, progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
    ) -> str:
        """Return the local image id of ref, pulling it (reporting progress) when absent.

        A pull stops at once when ``cancel`` is set (InterruptedBuild): it runs
        on its own thread, and a pull's stream may say nothing for minutes.
        """
        from docker.errors import DockerException, ImageNotFound

        api = self.api
        try:
            image_id = api.inspect_image(ref)["Id"]
            self._ensured[ref] = image_id
            return image_id
        except ImageNotFound:
            pass
        except DockerException as error:
            raise _map_error(error, f"inspecting image '{ref}'") from None
        if cancel is None:
            return self._pull(ref, progress)
        outcome: dict[str, Any] = {}

        def pull() -> None:
            try:
                outcome["id"] = self._pull(ref, progress)
            except BaseException as error:  # handed to the waiting thread
                outcome["error"] = error

        worker = threading.Thread(target=pull, name=f"pipex-pull-{ref}", daemon=True)
        worker.start()
        while worker.is_alive():
            if cancel.wait(_POLL_SEC):
                # The engine goes on with (or drops) the pull; we do not wait for it.
                raise InterruptedBuild(f"pulling image '{ref}' interrupted")
            worker.join(_POLL_SEC)
        if "error" in outcome:
            raise outcome["error"]
        return str(outcome["id"])

    def _pull(self, ref: str, progress: Callable[[str], None] | None) -> str:
        from docker.errors import DockerException

        api = self.api
        repo, tag = _split_ref(ref)
        try:
            for event in api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise _pull_error(ref, str(event["error"]))
                if progress is not None:
                    line = " ".join(str(event[k]) for k in ("id", "status", "progress") if event.get(k))
                    if line:
                        progress(line)
            image_id = api.inspect_image(ref)["Id"]
            self._ensured[ref] = image_id
            return image_id
        except ImageError:
            raise
        except (DockerException, OSError) as error:
            raise _pull_error(ref, _reason(error)) from None

    def _image_id(self, ref: str) -> str:
        """Return the id of a local image; an id is taken as is (saves a call)."""
        if ref.startswith("sha256:") and len(ref) == 71:
            return ref
        if ref in self._ensured:
            return self._ensured[ref]
        from docker.errors import DockerException, ImageNotFound

        try:
            return self.api.inspect_image(ref)["Id"]
        except ImageNotFound:
            msg = f"image '{ref}' not found locally (pull it first)"
            raise ImageError(msg) from None
        except DockerException as error:
            raise _map_error(error, f"inspecting image '{ref}'") from None

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
        with _mapped_errors("listing leftover containers"):
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
                    self._kill_processes(container["Id"], owner, paths)
            try:
                with _mapped_errors("removing a leftover container"):
                    self.api.remove_container(container["Id"], force=True, v=True)
                removed += 1
            except NotFound:
                pass  # someone else removed it meanwhile
        # Setup snapshots of hardened steps (see _run_hardened_after_setup) carry the same labels.
        with _mapped_errors("listing leftover images"):
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
            time.sleep(_POLL_SEC)
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
        image_id = self._image_id(inv.image)

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
            return _result(_cancelled(None), "", started_at), None
        _check_host_paths(inv)
        image_id = self._image_id(inv.image)
        owner = inv.owner or (os.geteuid(), os.getegid())
        fix_owner = owner[0] != 0
        # A step's own non-root user cannot chown: only a root exec can then fix ownership.
        keeper = bool(inv.setup_cmd) or (fix_owner and bool(inv.user) and _numeric_uid(inv.user) != 0)
        wrap_owner = owner if fix_owner and not keeper else None
        secrets_dir = _write_secrets(inv) if inv.secrets else None
        stop = threading.Event()  # set by stop_all
        container_id: str | None = None
        try:
            container_id = self._create(inv, image_id, keeper, secrets_dir, wrap_owner)
            if inv.runtime:
                self._check_runtime(container_id, inv)
            with self._lock:
                self._active[container_id] = stop
            if self._stopping.is_set():
                stop.set()
            if inv.sources:
                self._put_sources(container_id, inv)
            with _LogSink(inv) as sink:
                if keeper:
                    result = self._run_keeper(container_id, inv, cancel, stop, sink, owner if fix_owner else None)
                else:
                    result = self._run_direct(container_id, inv, cancel, stop, sink, wrap_owner is not None)
            if commit and result[0] == 0 and not (cancel.is_set() or stop.is_set()):
                with _mapped_errors(f"saving the setup of step '{inv.step_id}'"):
                    snapshot = str(self.api.commit(container_id, conf={"Labels": dict(inv.labels)})["Id"])
        except PipexError:
            if not (cancel.is_set() or stop.is_set()):
                raise
            # Stopped under our feet (stop_all removed the container): a cancel, not an error.
            result = _cancelled(None)
        finally:
            if container_id is not None:
                self._remove(container_id)
            if secrets_dir is not None:
                shutil.rmtree(secrets_dir, ignore_errors=True)
        return _result(result, image_id, started_at), snapshot

    def _create(
        self,
        inv: Invocation,
        image_id: str,
        keeper: bool,
        secrets_dir: Path | None,
        wrap_owner: tuple[int, int] | None,
    ) -> str:
        """Create the step's container (not started); return its id."""
        api = self.api
        needs_network = inv.network or (bool(inv.setup_cmd) and inv.setup_network)
        # (host path, container path, read-only) in mount order. Not a dict keyed by
        # host path: two inputs with identical output share one checkout and must
        # both be mounted. The Mounts API (not "src:dst:mode" strings) also takes
        # host paths that contain ':'.
        binds: list[tuple[str, str, bool]] = [(str(inv.output_dir), inv.output_path, False)]
        for mount in inv.mounts:
            binds.append((str(mount.source), mount.target, mount.read_only))
        if needs_network and self._network.ca_bundle is not None:
            if not self._network.ca_bundle.is_file():
                # The engine would create a directory there and mount it.
                msg = f"CA bundle '{self._network.ca_bundle}' (caBundle in .pipex.yml) is not a file"
                raise HostPathError(msg)
            binds.append((str(self._network.ca_bundle), CONTAINER_CA_PATH, True))
        if secrets_dir is not None:
            for secret in inv.secrets:
                binds.append((str(secrets_dir / secret.name), f"/run/secrets/{secret.name}", True))
        from docker.types import Mount as DockerMount

        mounts = [DockerMount(target, source, type="bind", read_only=ro) for source, target, ro in binds]
        env = dict(inv.env)
        if inv.network:
            env.update(network_env(self._network))
        host_config: dict[str, Any] = {
            "mounts": mounts,
            "network_mode": _BRIDGE if needs_network else "none",
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
        with _mapped_errors(f"creating the container of step '{inv.step_id}'"):
            created = api.create_container(
                image_id,
                entrypoint=list(KEEPER_CMD if keeper else _owning_cmd(inv, wrap_owner)),
                command=[],
                environment=env,
                # The keeper runs as root so its root execs keep the capabilities to
                # chown; setup and cmd are exec'd as the step's user instead.
                user="" if keeper else (inv.user or ""),
                working_dir=inv.workdir,
                labels=dict(inv.labels),
                host_config=api.create_host_config(**host_config),
                network_disabled=False,
                stdin_open=False,
                tty=False,
            )
        return created["Id"]

    def _check_runtime(self, container_id: str, inv: Invocation) -> None:
        """Fail the step if the engine created the container under another runtime than asked (an API may ignore it)."""
        with _mapped_errors(f"inspecting the container of step '{inv.step_id}'"):
            host = self.api.inspect_container(container_id).get("HostConfig") or {}
        got = host.get("Runtime") or "the default runtime"
        if got != inv.runtime:
            msg = (
                f"step '{inv.step_id}': the engine ignored runtime '{inv.runtime}' and would run it under {got}; "
                "refusing to run it unsandboxed"
            )
            raise ContainerError(msg)

    def _put_sources(self, container_id: str, inv: Invocation) -> None:
        """Copy the step's sources into the (created, not started) container with one put_archive."""
        # A spooled file keeps small trees in memory and spills big ones to disk.
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for host, target in inv.sources:
                    tar.add(str(host), arcname=target.lstrip("/"), filter=_root_owned)
            size = buffer.tell()
            buffer.seek(0)
            # Small archives go as bytes; big ones are streamed from the spilled file.
            data: Any = buffer.read() if size <= _SPOOL_MAX else buffer
            with _mapped_errors(f"copying sources into the container of step '{inv.step_id}'"):
                ok = self.api.put_archive(container_id, "/", data)
        if not ok:
            msg = f"step '{inv.step_id}': the engine refused to copy the sources in"
            raise ContainerError(msg)

    def _run_direct(
        self,
        container_id: str,
        inv: Invocation,
        cancel: threading.Event,
        stop: threading.Event,
        sink: _LogSink,
        wrapped: bool,
    ) -> tuple[int, bool, bool, Phase | None, str | None]:
        """Run ``cmd`` as the main process: start, follow its logs, wait.

        When ``wrapped`` (see `_owning_cmd`), a kill is first a SIGTERM so the
        wrapper can kill ``cmd`` and chown the output before exiting.
        """
        api = self.api
        _enter_phase(inv, Phase.RUN)
        failed_start = _start(api, container_id)
        if failed_start is not None:
            return failed_start
        deadline = _deadline(inv.timeout_sec)
        # NOTE: following the logs after start, not attaching before it: the
        # engine acknowledges an attach before it is wired to the streams, so
        # early output can be lost (or, with logs=1, sent twice); the log file
        # has everything exactly once.
        pump = self._follow_output(container_id, inv, sink)
        try:
            how = _wait(pump.done, cancel, stop, deadline)
            if how is not None:
                with _mapped_errors(f"killing the container of step '{inv.step_id}'"):
                    if wrapped:
                        _ignore_gone(lambda cid: api.kill(cid, signal="SIGTERM"), container_id)
                    if not wrapped or not pump.done.wait(_WRAPPER_GRACE_SEC):
                        _ignore_gone(api.kill, container_id)
                pump.done.wait(10)
                return _killed(how, Phase.RUN, inv)
            pump.done.wait()
            if pump.open_error is not None:
                raise pump.open_error
            with _mapped_errors(f"waiting for step '{inv.step_id}'"):
                exit_code = int(api.wait(container_id)["StatusCode"])
            if pump.timestamped:
                self._catch_up(container_id, inv, pump, sink)
        finally:
            pump.close()
        return _finished(exit_code, Phase.RUN)

    def _catch_up(self, container_id: str, inv: Invocation, pump: _Pump, sink: _LogSink) -> None:
        """Append what a follow missed: it can end before the engine logged the last (partial) line.

        One more logs request, from the last timestamp seen; entries at that
        timestamp already received are skipped, so nothing is written twice.
        """
        api = self.api
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        # NOTE: within one stream the log is in stamp order, but stdout and stderr
        # are copied by separate goroutines, so across streams an entry stamped
        # earlier may come after a later one. Hence a mark per stream: the last
        # stamp delivered and how many entries had it (a long line's pieces share
        # one). A stream the follow never saw is re-read from a second before the
        # other's mark. O(1) memory, whatever the step printed.
        marks = dict(pump.marks)
        since = min((ns for ns, _ in marks.values()), default=0)
        if len(marks) == 1:
            since = max(0, since - _UNSEEN_STREAM_SLACK_NS)
        if since > 0:
            params["since"] = f"{since // 1_000_000_000}.{since % 1_000_000_000:09d}"
        skip = {stream: count for stream, (_, count) in marks.items()}
        with _mapped_errors(f"reading the output of step '{inv.step_id}'"):
            response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
            api._raise_for_status(response)
            try:
                for stream, entry in _log_entries(response.raw):
                    ns, data = _split_timestamp(entry)
                    mark = marks.get(stream)
                    if mark is not None:
                        if ns < mark[0]:
                            continue
                        if ns == mark[0] and skip[stream] > 0:
                            skip[stream] -= 1
                            continue
                    sink.write(stream, data)
            finally:
                response.close()

    def _follow_output(self, container_id: str, inv: Invocation, sink: _LogSink) -> _Pump:
        """Stream the started container's output into the sink (logs follow; attach if logs are unreadable)."""
        from docker.errors import APIError

        api = self.api

        def open_stream() -> tuple[Any, Any]:
            with _mapped_errors(f"following the output of step '{inv.step_id}'"):
                try:
                    response = api._get(
                        api._url("/containers/{0}/logs", container_id),
                        params={"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 1},
                        stream=True,
                    )
                    _disable_timeout(api._get_raw_response_socket(response))
                    return None, response
                except APIError as error:
                    if error.status_code is None or error.status_code >= 500 and error.status_code != 501:
                        raise
                    # A log driver the engine cannot read back ("none"...): attaching
                    # late may miss the first lines, but the step still runs.
                    return api.attach_socket(container_id, params={"stdout": 1, "stderr": 1, "stream": 1}), None

        return _Pump(sink, opener=open_stream)

    def _run_keeper(
        self,
        container_id: str,
        inv: Invocation,
        cancel: threading.Event,
        stop: threading.Event,
        sink: _LogSink,
        owner: tuple[int, int] | None,
    ) -> tuple[int, bool, bool, Phase | None, str | None]:
        """Start the idle keeper, run setup and ``cmd`` via exec, then fix ownership."""
        api = self.api
        failed_start = _start(api, container_id, keeper=True)
        if failed_start is not None:
            return failed_start
        deadline = _deadline(inv.timeout_sec)
        owned_paths = [inv.output_path, *(m.target for m in inv.mounts if not m.read_only)]
        # The engine cannot connect a container created without network, so a
        # step whose run phase alone has network starts on the bridge and is
        # disconnected for setup, then reconnected.
        isolated_setup = bool(inv.setup_cmd) and inv.network and not inv.setup_network
        if isolated_setup:
            with _mapped_errors(f"isolating the setup of step '{inv.step_id}' from the network"):
                api.disconnect_container_from_network(container_id, _BRIDGE, force=True)
        try:
            if inv.setup_cmd:
                setup_env = network_env(self._network) if inv.setup_network else {}
                lock = inv.setup_lock() if inv.setup_lock is not None else nullcontext()
                with lock:
                    _enter_phase(inv, Phase.SETUP)
                    # Setup runs as root (installs write the image); cmd as the step's user.
                    code = self._exec(
                        container_id, inv.setup_cmd, setup_env, "0", sink, cancel, stop, deadline, Phase.SETUP
                    )
                if code != 0:
                    self._fix_owner(container_id, owner, owned_paths)
                    return code, False, False, Phase.SETUP, f"setup failed with exit code {code}"
                if inv.setup_network and not inv.network:
                    with _mapped_errors(f"isolating step '{inv.step_id}' from the network"):
                        api.disconnect_container_from_network(container_id, _BRIDGE, force=True)
                if isolated_setup:
                    with _mapped_errors(f"connecting step '{inv.step_id}' to the network"):
                        api.connect_container_to_network(container_id, _BRIDGE)
            _enter_phase(inv, Phase.RUN)
            code = self._exec(container_id, inv.cmd, {}, inv.user, sink, cancel, stop, deadline)
            self._fix_owner(container_id, owner, owned_paths)
            return _finished(code, Phase.RUN)
        except _Killed as killed:
            how, phase, pump = killed.args
            self._kill_processes(container_id, owner, owned_paths)
            pump.close()
            return _killed(how, phase, inv)

    def _exec(
        self,
        container_id: str,
        cmd: tuple[str, ...],
        env: Mapping[str, str],
        user: str | None,
        sink: _LogSink | None,
        cancel: threading.Event,
        stop: threading.Event,
        deadline: float | None,
        phase: Phase = Phase.RUN,
    ) -> int:
        """Run one command in the running container, streaming its output; return its exit code."""
        api = self.api
        with _mapped_errors("starting a process in a step's container"):
            exec_id = api.exec_create(
                container_id, list(cmd), stdout=True, stderr=True, environment=dict(env) or None, user=user or ""
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        pump = _Pump(sink, sock=sock)
        how = _wait(pump.done, cancel, stop, deadline)
        if how is not None:
            raise _Killed(how, phase, pump)  # the catcher closes the pump once the processes are dead
        pump.close()
        with _mapped_errors("reading a process's exit code"):
            # The stream can end a moment before the engine records the exit.
            give_up = time.monotonic() + 10
            while time.monotonic() < give_up:
                info = api.exec_inspect(exec_id)
                if not info["Running"] and info["ExitCode"] is not None:
                    return int(info["ExitCode"])
                time.sleep(0.005)
        msg = f"the engine never reported the exit code of {cmd[0]!r}"
        raise ContainerError(msg)

    def _fix_owner(self, container_id: str, owner: tuple[int, int] | None, paths: list[str]) -> None:
        """The step is over: kill what it left running, then give the output and caches to the caller (a root exec)."""
        if owner is None:
            return
        never = threading.Event()
        # Background processes die first, or they could write root-owned files after the chown.
        cmd = ("sh", "-c", _KILL_AND_CHOWN, f"{owner[0]}:{owner[1]}", *paths)
        # Best effort: an image without chown leaves root-owned files, which the
        # store reports when it cannot move them.
        try:
            self._exec(container_id, cmd, {}, "0", None, never, never, None)
        except PipexError:
            pass

    def _kill_processes(self, container_id: str, owner: tuple[int, int] | None, paths: list[str]) -> None:
        """Stop a timed-out or cancelled phase: kill its processes, fix ownership; or kill the container."""
        api = self.api
        if owner is not None:
            never = threading.Event()
            cmd = ("sh", "-c", _KILL_AND_CHOWN, f"{owner[0]}:{owner[1]}", *paths)
            try:
                self._exec(container_id, cmd, {}, "0", None, never, never, time.monotonic() + 30)
                return
            except _Killed as killed:  # the kill itself hung: stop everything below
                killed.args[2].close()
            except PipexError:
                pass  # fall through: at least stop everything
        try:
            api.kill(container_id)
        except Exception:  # already gone; removal follows anyway
            pass

    def _remove(self, container_id: str) -> None:
        """Remove the container (force: it may still run); forget it."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except Exception:  # NOTE: removal failures must not hide the step's result; remove_leftovers retries
            pass
        finally:
            with self._lock:
                self._active.pop(container_id, None)


# -- helpers -------------------------------------------------------------


class _LogSink:
    """Appends a step's output to its log files as it comes and feeds ``on_log`` line by line."""

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._on_log = inv.on_log
        self._files: dict[int, IO[bytes]] = {}
        self._partial: dict[int, bytes] = {1: b"", 2: b""}

    def __enter__(self) -> _LogSink:
        try:
            self._inv.stdout_path.parent.mkdir(parents=True, exist_ok=True)
            self._inv.stderr_path.parent.mkdir(parents=True, exist_ok=True)
            self._files = {1: open(self._inv.stdout_path, "ab"), 2: open(self._inv.stderr_path, "ab")}
        except OSError as error:
            msg = f"step '{self._inv.step_id}': cannot write its logs: {error.filename}: {error.strerror}"
            raise StoreError(msg) from None
        return self

    def write(self, stream: int, data: bytes) -> None:
        """Append a chunk of stream 1 (stdout) or 2 (stderr)."""
        stream = 2 if stream == 2 else 1
        handle = self._files[stream]
        handle.write(data)
        handle.flush()  # so the file grows while the step runs
        if self._on_log is None:
            return
        buffered = self._partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            self._emit(stream, line)
        if len(rest) > _MAX_LINE:
            self._emit(stream, rest)
            rest = b""
        self._partial[stream] = rest

    def _emit(self, stream: int, line: bytes) -> None:
        if self._on_log is None:
            return
        try:
            self._on_log("stderr" if stream == 2 else "stdout", line.decode("utf-8", "replace"))
        except Exception:  # NOTE: a broken display must not fail the step; the files still get everything
            self._on_log = None

    def __exit__(self, *exc: object) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._emit(stream, rest)
        failed: OSError | None = None
        for handle in self._files.values():
            try:
                handle.close()
            except OSError as error:  # the last buffered bytes did not fit: a full disk
                failed = failed or error
        if failed is not None and exc[0] is None:
            msg = f"step '{self._inv.step_id}': cannot write its logs: {failed.strerror}"
            raise StoreError(msg) from None


class _Pump:
    """Reads a multiplexed output stream on a thread into a sink; ``done`` is set at its end.

    Two sources: a hijacked exec socket (``sock``), or the HTTP response of a
    followed ``logs`` request (``response``, read through urllib3 so chunked
    encoding is undone).
    """

    def __init__(
        self,
        sink: _LogSink | None,
        *,
        sock: Any = None,
        response: Any = None,
        opener: Callable[[], tuple[Any, Any]] | None = None,
    ) -> None:
        self._sock = sock
        self._response = response
        # ``opener`` returns (sock, response), called on the pump's thread: on
        # Podman a followed logs request answers only with the first output, and
        # a silent step must still time out and be cancelled on time.
        self._opener = opener
        self.open_error: BaseException | None = None
        self._sink = sink
        self.done = threading.Event()
        self.error: BaseException | None = None
        # A logs response carries timestamps: the newest one seen (ns), so
        # `_catch_up` can fetch exactly what the follow missed.
        self.timestamped = response is not None or opener is not None
        # Per stream: the last stamp delivered and how many entries had it (see `_catch_up`).
        self.marks: dict[int, tuple[int, int]] = {}
        if sock is not None:
            _disable_timeout(sock)
        self._thread = threading.Thread(target=self._loop, name="pipex-log-pump", daemon=True)
        self._thread.start()

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        if self._sock is not None:
            from docker.utils.socket import frames_iter

            yield from frames_iter(self._sock, tty=False)
            return
        for stream, entry in _log_entries(self._response.raw):
            ns, data = _split_timestamp(entry)
            last, count = self.marks.get(stream, (-1, 0))
            self.marks[stream] = (ns, count + 1) if ns == last else (ns, 1)
            yield stream, data

    def _loop(self) -> None:
        try:
            if self._opener is not None:
                try:
                    self._sock, self._response = self._opener()
                except BaseException as error:  # handed to the step's thread through open_error
                    self.open_error = error
                    self.timestamped = False
                    return
                self.timestamped = self._response is not None
                if self._sock is not None:
                    _disable_timeout(self._sock)
            for stream, data in self._frames():
                if self._sink is not None and data:
                    try:
                        self._sink.write(stream, data)
                    except Exception as error:  # a full disk or a failing on_log: keep draining,
                        self.error = error  # or the step would block on a full pipe forever
                        self._sink = None
        except Exception as error:  # closed under us by close() after a kill, or the daemon went away
            self.error = self.error or error
        finally:
            self.done.set()

    def close(self) -> None:
        """Close the stream and wait for the thread (briefly: it ends at EOF or on close)."""
        if self._sock is None and self._response is None:
            self._thread.join(5)  # still opening: the request ends when the container is removed
            if self._sock is None and self._response is None:
                return
        if self._sock is not None:
            if not self.done.is_set():
                _shutdown(self._sock)
            self._thread.join(5)
            try:
                self._sock.close()
            except OSError:
                pass
        else:
            if not self.done.is_set():
                self._response.close()
            self._thread.join(5)
            self._response.close()


def _log_entries(raw: Any) -> Iterator[tuple[int, bytes]]:
    """Yield (stream, entry) from a multiplexed logs body; one frame is one log entry."""
    while True:
        header = raw.read(8)
        if len(header) < 8:
            return
        stream, length = struct.unpack(">BxxxL", header)
        parts: list[bytes] = []
        while length > 0:
            data = raw.read(min(length, _READ_CHUNK))
            if not data:
                return
            parts.append(data)
            length -= len(data)
        yield stream, b"".join(parts)


_TIMESTAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _split_timestamp(entry: bytes) -> tuple[int, bytes]:
    """Split ``b"2026-01-02T03:04:05.123456789Z data"`` into (unix ns, data)."""
    stamp, _, data = entry.partition(b" ")
    match = _TIMESTAMP.fullmatch(stamp)
    if match is None:  # not a timestamp after all: keep the bytes
        return -1, entry
    whole, fraction, zone = (part.decode("ascii") if part else "" for part in match.groups())
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9]), data


def _enter_phase(inv: Invocation, phase: Phase) -> None:
    """Tell the runner a phase begins (for progress and the build timeline)."""
    if inv.on_phase is not None:
        inv.on_phase(phase)


def _disable_timeout(sock: Any) -> None:
    """A step may be silent for longer than the API timeout: reads on its stream must block."""
    for candidate in (sock, getattr(sock, "_sock", None)):
        if candidate is not None and hasattr(candidate, "settimeout"):
            candidate.settimeout(None)


def _shutdown(sock: Any) -> None:
    for candidate in (getattr(sock, "_sock", None), sock):
        if isinstance(candidate, socketlib.socket):
            try:
                candidate.shutdown(socketlib.SHUT_RDWR)
            except OSError:
                pass
            return


def _start(api: Any, container_id: str, keeper: bool = False) -> tuple[int, bool, bool, Phase | None, str] | None:
    """Start the container; a start the engine refuses (no such cmd, unknown user...) fails the step.

    Returns None when started, else the step's failure (127 when the command is
    missing, as a shell reports it; 126 otherwise).
    """
    from docker.errors import APIError

    try:
        api.start(container_id)
        return None
    except APIError as error:
        reason = _reason(error)
        if error.status_code is not None and error.status_code < 500 and error.status_code != 400:
            raise _map_error(error, "starting a step's container") from None
        missing = "not found" in reason or "no such file" in reason
        if keeper:
            reason += " (steps with a setup phase need `sh` in the image)"
        return (127 if missing else 126), False, False, Phase.RUN, f"cannot start: {reason}"
    except Exception as error:
        raise _map_error(error, "starting a step's container") from None


def _deadline(timeout_sec: float | None) -> float | None:
    return None if timeout_sec is None else time.monotonic() + timeout_sec


def _wait(
    done: threading.Event, cancel: threading.Event, stop: threading.Event, deadline: float | None
) -> str | None:
    """Wait for ``done``; return None, or "timeout"/"cancel" when the phase must be killed."""
    while not done.wait(_POLL_SEC):
        if cancel.is_set() or stop.is_set():
            return "cancel"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
    return None


def _finished(exit_code: int, phase: Phase) -> tuple[int, bool, bool, Phase | None, str | None]:
    if exit_code == 0:
        return 0, False, False, None, None
    what = "setup" if phase is Phase.SETUP else "cmd"
    return exit_code, False, False, phase, f"{what} failed with exit code {exit_code}"


def _cancelled(phase: Phase | None) -> tuple[int, bool, bool, Phase | None, str | None]:
    return CANCELLED_EXIT_CODE, False, True, phase, "cancelled"


def _killed(how: str, phase: Phase, inv: Invocation) -> tuple[int, bool, bool, Phase | None, str | None]:
    if how == "timeout":
        return TIMEOUT_EXIT_CODE, True, False, phase, f"timed out after {inv.timeout_sec:g}s"
    return _cancelled(phase)


def _result(
    outcome: tuple[int, bool, bool, Phase | None, str | None], image_id: str, started_at: float
) -> ExecutionResult:
    """The ExecutionResult of an outcome tuple (exit code, timed out, cancelled, failed phase, message)."""
    exit_code, timed_out, cancelled, phase, message = outcome
    return ExecutionResult(
        exit_code=exit_code,
        timed_out=timed_out,
        cancelled=cancelled,
        failed_phase=phase,
        image_id=image_id,
        started_at=started_at,
        finished_at=time.time(),
        message=message,
    )


def _ignore_gone(call: Callable[[str], Any], container_id: str) -> None:
    from docker.errors import APIError

    try:
        call(container_id)
    except APIError as error:
        if error.status_code not in (404, 409):  # gone, or already stopped
            raise


def _check_host_paths(inv: Invocation) -> None:
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


def _write_secrets(inv: Invocation) -> Path:
    """Write each secret to a 0400 file in a fresh 0700 dir; the caller deletes the dir."""
    directory = Path(tempfile.mkdtemp(prefix="pipex-secrets-", dir=inv.scratch_dir))
    uid = _numeric_uid(inv.user)
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


def _owning_cmd(inv: Invocation, owner: tuple[int, int] | None) -> tuple[str, ...]:
    """``cmd``, wrapped in `_OWNING_WRAPPER` when its output must be given to ``owner``."""
    if owner is None:
        return inv.cmd
    paths = [inv.output_path, *(m.target for m in inv.mounts if not m.read_only)]
    script = _OWNING_WRAPPER.format(owner=f"{owner[0]}:{owner[1]}", paths=" ".join(shlex.quote(p) for p in paths))
    return ("sh", "-c", script, "sh", *inv.cmd)


def _numeric_uid(user: str | None) -> int | None:
    if not user:
        return None
    head = user.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Sources enter the container owned by root, as an image's own files are."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _context_host() -> str | None:
    """The current docker CLI context's endpoint, if one other than the default is set."""
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        host = context.Host if context is not None else None
        return host or None
    except Exception:  # a broken ~/.docker/config.json must not hide the default socket
        return None


def _require_local_engine(url: str, where: str) -> None:
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


def _split_ref(ref: str) -> tuple[str, str | None]:
    """Split a reference into repository and tag (or digest) for a pull."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.split(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


def _reason(error: BaseException) -> str:
    """A one-line reason from a docker-py / requests error (they nest and repeat)."""
    text = str(getattr(error, "explanation", None) or error)
    for marker in ("Connection aborted.", "Caused by "):
        text = text.replace(marker, "")
    line = " ".join(text.split())
    return line[:300]


def _connect_reason(error: BaseException) -> str:
    """Why a connection failed, in words a user can act on (docker-py nests requests' errors)."""
    text = str(error)
    status = re.search(r"(\d{3}) (?:Client|Server) Error for \S+/version", text)
    if status is not None:
        return f"the server there is not a Docker engine (GET /version answered {status.group(1)})"
    for needle, reason in (
        ("No such file or directory", "no socket there (is the daemon running?)"),
        ("FileNotFoundError", "no socket there (is the daemon running?)"),
        ("Connection refused", "connection refused (is the daemon running?)"),
        ("Permission denied", "permission denied (is this user in the docker group?)"),
        ("timed out", "the daemon did not answer in time"),
    ):
        if needle in text:
            return reason
    return _reason(error)


def _pull_error(ref: str, reason: str) -> ImageError:
    return ImageError(f"image '{ref}' not found locally and cannot be pulled: {reason}")


def _map_error(error: BaseException, doing: str) -> PipexError:
    """Turn a docker-py / transport error into a one-line PipexError."""
    from docker.errors import APIError, DockerException, ImageNotFound

    if isinstance(error, ImageNotFound):
        return ImageError(f"{doing}: {_reason(error)}")
    if isinstance(error, APIError):
        return ContainerError(f"{doing}: {_reason(error)}")
    if isinstance(error, DockerException):  # raised by docker-py itself: a bad argument, not the daemon
        return ContainerError(f"{doing}: {_reason(error)}")
    return DockerUnavailableError(f"{doing}: the Docker daemon stopped answering: {_connect_reason(error)}")


class _mapped_errors:
    """Context manager: docker-py and connection errors leave as one-line PipexErrors."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        if error is None or isinstance(error, (PipexError, _Killed)):
            return False
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        if isinstance(error, NotFound) and self._doing.startswith("removing"):
            return False
        if isinstance(error, (DockerException, RequestException, OSError)):
            raise _map_error(error, self._doing) from None
        return False

