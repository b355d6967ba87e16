"""A step's phases in its container: direct (``cmd`` is the main process) or keeper (setup and ``cmd`` exec'd).

- *direct* (no setup phase): create, [put_archive], start, logs (follow),
  wait, remove: the bare docker cycle plus one streamed logs request.
- *keeper* (a setup phase, or ownership to fix for a step with its own
  non-root ``user``): the main process is an idle ``sh`` loop running as
  root; setup and ``cmd`` are exec'd as the step's user, so the network can be
  disconnected between them and root execs can kill and chown at the end.
  Each exec costs ~40 ms, hence not the default. Needs ``sh``.

Each phase ends in a ``PhaseOutcome``; a phase stopped by timeout or cancel
is killed (and its files given back) before the container goes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from pipex.errors import ContainerError, PipexError
from pipex.executor.base import CANCELLED_EXIT_CODE, TIMEOUT_EXIT_CODE, ExecutionResult, Invocation, NetworkConfig, Phase
from pipex.executor.docker.engine import BRIDGE, POLL_SEC, Killed, ignore_gone, map_error, mapped_errors, reason
from pipex.executor.docker.ownership import WRAPPER_GRACE_SEC, kill_and_chown_cmd, owned_paths
from pipex.executor.docker.streams import LogSink, Pump, catch_up, follow_output
from pipex.executor.network import network_env

__all__ = ["PhaseOutcome", "run_direct", "run_keeper", "exec_in", "kill_processes", "cancelled", "to_result"]


@dataclass(frozen=True)
class PhaseOutcome:
    """How a step's phases ended: exit code, whether a timeout or cancel stopped them, the failed phase, why."""

    exit_code: int
    timed_out: bool = False
    cancelled: bool = False
    failed_phase: Phase | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True for a zero exit that nothing stopped."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


def run_direct(
    api: Any,
    container_id: str,
    inv: Invocation,
    cancel: threading.Event,
    stop: threading.Event,
    sink: LogSink,
    wrapped: bool,
) -> PhaseOutcome:
    """Run ``cmd`` as the main process: start, follow its logs, wait.

    When ``wrapped`` (see `owning_cmd`), a kill is first a SIGTERM so the
    wrapper can kill ``cmd`` and chown the output before exiting.
    """
    enter_phase(inv, Phase.RUN)
    failed_start = start(api, container_id)
    if failed_start is not None:
        return failed_start
    deadline = deadline_of(inv.timeout_sec)
    # NOTE: following the logs after start, not attaching before it: the
    # engine acknowledges an attach before it is wired to the streams, so
    # early output can be lost (or, with logs=1, sent twice); the log file
    # has everything exactly once.
    pump = follow_output(api, container_id, inv, sink)
    try:
        how = wait_phase(pump.done, cancel, stop, deadline)
        if how is not None:
            with mapped_errors(f"killing the container of step '{inv.step_id}'"):
                if wrapped:
                    ignore_gone(lambda cid: api.kill(cid, signal="SIGTERM"), container_id)
                if not wrapped or not pump.done.wait(WRAPPER_GRACE_SEC):
                    ignore_gone(api.kill, container_id)
            pump.done.wait(10)
            return killed(how, Phase.RUN, inv)
        pump.done.wait()
        if pump.open_error is not None:
            raise pump.open_error
        with mapped_errors(f"waiting for step '{inv.step_id}'"):
            exit_code = int(api.wait(container_id)["StatusCode"])
        if pump.timestamped:
            catch_up(api, container_id, inv, pump, sink)
    finally:
        pump.close()
    return finished(exit_code, Phase.RUN)


def run_keeper(
    api: Any,
    network: NetworkConfig,
    container_id: str,
    inv: Invocation,
    cancel: threading.Event,
    stop: threading.Event,
    sink: LogSink,
    owner: tuple[int, int] | None,
) -> PhaseOutcome:
    """Start the idle keeper, run setup and ``cmd`` via exec, then fix ownership."""
    failed_start = start(api, container_id, keeper=True)
    if failed_start is not None:
        return failed_start
    deadline = deadline_of(inv.timeout_sec)
    paths = owned_paths(inv)
    # The engine cannot connect a container created without network, so a
    # step whose run phase alone has network starts on the bridge and is
    # disconnected for setup, then reconnected.
    isolated_setup = bool(inv.setup_cmd) and inv.network and not inv.setup_network
    if isolated_setup:
        with mapped_errors(f"isolating the setup of step '{inv.step_id}' from the network"):
            api.disconnect_container_from_network(container_id, BRIDGE, force=True)
    try:
        if inv.setup_cmd:
            setup_env = network_env(network) if inv.setup_network else {}
            lock = inv.setup_lock() if inv.setup_lock is not None else nullcontext()
            with lock:
                enter_phase(inv, Phase.SETUP)
                # Setup runs as root (installs write the image); cmd as the step's user.
                code = exec_in(api, container_id, inv.setup_cmd, setup_env, "0", sink, cancel, stop, deadline, Phase.SETUP)
            if code != 0:
                fix_owner(api, container_id, owner, paths)
                return PhaseOutcome(code, failed_phase=Phase.SETUP, message=f"setup failed with exit code {code}")
            if inv.setup_network and not inv.network:
                with mapped_errors(f"isolating step '{inv.step_id}' from the network"):
                    api.disconnect_container_from_network(container_id, BRIDGE, force=True)
            if isolated_setup:
                with mapped_errors(f"connecting step '{inv.step_id}' to the network"):
                    api.connect_container_to_network(container_id, BRIDGE)
        enter_phase(inv, Phase.RUN)
        code = exec_in(api, container_id, inv.cmd, {}, inv.user, sink, cancel, stop, deadline)
        fix_owner(api, container_id, owner, paths)
        return finished(code, Phase.RUN)
    except Killed as stopped:
        how, phase, pump = stopped.args
        kill_processes(api, container_id, owner, paths)
        pump.close()
        return killed(how, phase, inv)


def exec_in(
    api: Any,
    container_id: str,
    cmd: tuple[str, ...],
    env: Mapping[str, str],
    user: str | None,
    sink: LogSink | None,
    cancel: threading.Event,
    stop: threading.Event,
    deadline: float | None,
    phase: Phase = Phase.RUN,
) -> int:
    """Run one command in the running container, streaming its output; return its exit code."""
    with mapped_errors("starting a process in a step's container"):
        exec_id = api.exec_create(
            container_id, list(cmd), stdout=True, stderr=True, environment=dict(env) or None, user=user or ""
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
    pump = Pump(sink, sock=sock)
    how = wait_phase(pump.done, cancel, stop, deadline)
    if how is not None:
        raise Killed(how, phase, pump)  # the catcher closes the pump once the processes are dead
    pump.close()
    with mapped_errors("reading a process's exit code"):
        # The stream can end a moment before the engine records the exit.
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            info = api.exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.005)
    msg = f"the engine never reported the exit code of {cmd[0]!r}"
    raise ContainerError(msg)


def fix_owner(api: Any, container_id: str, owner: tuple[int, int] | None, paths: list[str]) -> None:
    """The step is over: kill what it left running, then give the output and caches to the caller (a root exec)."""
    if owner is None:
        return
    never = threading.Event()
    # Background processes die first, or they could write root-owned files after the chown.
    cmd = kill_and_chown_cmd(owner, paths)
    # Best effort: an image without chown leaves root-owned files, which the
    # store reports when it cannot move them.
    try:
        exec_in(api, container_id, cmd, {}, "0", None, never, never, None)
    except PipexError:
        pass


def kill_processes(api: Any, container_id: str, owner: tuple[int, int] | None, paths: list[str]) -> None:
    """Stop a timed-out or cancelled phase: kill its processes, fix ownership; or kill the container."""
    if owner is not None:
        never = threading.Event()
        cmd = kill_and_chown_cmd(owner, paths)
        try:
            exec_in(api, container_id, cmd, {}, "0", None, never, never, time.monotonic() + 30)
            return
        except Killed as hung:  # the kill itself hung: stop everything below
            hung.args[2].close()
        except PipexError:
            pass  # fall through: at least stop everything
    try:
        api.kill(container_id)
    except Exception:  # already gone; removal follows anyway
        pass


def enter_phase(inv: Invocation, phase: Phase) -> None:
    """Tell the engine a phase begins (for progress and the build timeline)."""
    if inv.on_phase is not None:
        inv.on_phase(phase)


def start(api: Any, container_id: str, keeper: bool = False) -> PhaseOutcome | None:
    """Start the container; a start the engine refuses (no such cmd, unknown user...) fails the step.

    Returns None when started, else the step's failure (127 when the command is
    missing, as a shell reports it; 126 otherwise).
    """
    from docker.errors import APIError

    try:
        api.start(container_id)
        return None
    except APIError as error:
        why = reason(error)
        if error.status_code is not None and error.status_code < 500 and error.status_code != 400:
            raise map_error(error, "starting a step's container") from None
        missing = "not found" in why or "no such file" in why
        if keeper:
            why += " (steps with a setup phase need `sh` in the image)"
        return PhaseOutcome(127 if missing else 126, failed_phase=Phase.RUN, message=f"cannot start: {why}")
    except Exception as error:
        raise map_error(error, "starting a step's container") from None


def deadline_of(timeout_sec: float | None) -> float | None:
    return None if timeout_sec is None else time.monotonic() + timeout_sec


def wait_phase(
    done: threading.Event, cancel: threading.Event, stop: threading.Event, deadline: float | None
) -> str | None:
    """Wait for ``done``; return None, or "timeout"/"cancel" when the phase must be killed."""
    while not done.wait(POLL_SEC):
        if cancel.is_set() or stop.is_set():
            return "cancel"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
    return None


def finished(exit_code: int, phase: Phase) -> PhaseOutcome:
    """The outcome of a phase that ran to its end."""
    if exit_code == 0:
        return PhaseOutcome(0)
    what = "setup" if phase is Phase.SETUP else "cmd"
    return PhaseOutcome(exit_code, failed_phase=phase, message=f"{what} failed with exit code {exit_code}")


def cancelled(phase: Phase | None) -> PhaseOutcome:
    """The outcome of a phase a cancel stopped (or that never started)."""
    return PhaseOutcome(CANCELLED_EXIT_CODE, cancelled=True, failed_phase=phase, message="cancelled")


def killed(how: str, phase: Phase, inv: Invocation) -> PhaseOutcome:
    """The outcome of a phase stopped by ``how`` (``timeout`` or ``cancel``)."""
    if how == "timeout":
        return PhaseOutcome(TIMEOUT_EXIT_CODE, timed_out=True, failed_phase=phase, message=f"timed out after {inv.timeout_sec:g}s")
    return cancelled(phase)


def to_result(outcome: PhaseOutcome, image_id: str, started_at: float) -> ExecutionResult:
    """The ExecutionResult of a step's outcome."""
    return ExecutionResult(
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        cancelled=outcome.cancelled,
        failed_phase=outcome.failed_phase,
        image_id=image_id,
        started_at=started_at,
        finished_at=time.time(),
        message=outcome.message,
    )
