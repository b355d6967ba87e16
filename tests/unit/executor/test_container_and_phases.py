"""What a step's container is made of, and how its phases end, without a daemon.

``container_spec`` is a pure function of the invocation; the phase helpers
turn what happened into one ``PhaseOutcome``; ``start`` maps what an engine
says when it refuses a container. The engine's half is in
tests/integration/test_executor.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipex.errors import ContainerError, HostPathError
from pipex.executor.base import CANCELLED_EXIT_CODE, TIMEOUT_EXIT_CODE, Invocation, Mount, NetworkConfig, Phase, SecretFile
from pipex.executor.docker.container import KEEPER_CMD, check_host_paths, container_spec, write_secrets
from pipex.executor.docker.ownership import kill_and_chown_cmd, numeric_uid, owned_paths, owning_cmd
from pipex.executor.docker.phases import cancelled, finished, killed, start, to_result, wait_phase


def _inv(tmp_path: Path, **fields: Any) -> Invocation:
    (tmp_path / "out").mkdir(exist_ok=True)
    base: dict[str, Any] = {
        "step_id": "s",
        "image": "sha256:" + "0" * 64,
        "cmd": ("sh", "-c", "echo hi"),
        "env": {"A": "1"},
        "output_dir": tmp_path / "out",
        "stdout_path": tmp_path / "stdout.log",
        "stderr_path": tmp_path / "stderr.log",
    }
    return Invocation(**{**base, **fields})


def test_a_plain_step_has_no_network_no_new_privileges_and_only_its_env(tmp_path: Path) -> None:
    spec = container_spec(NetworkConfig(proxy_env={"HTTPS_PROXY": "http://p:1"}), _inv(tmp_path), False, None, None)
    assert spec.host_config["network_mode"] == "none"
    assert spec.host_config["security_opt"] == ["no-new-privileges"]
    assert spec.environment == {"A": "1"}  # no proxy without allowNetwork
    assert spec.entrypoint == ("sh", "-c", "echo hi") and spec.user == ""
    assert spec.binds == ((str(tmp_path / "out"), "/output", False),)


def test_mounts_keep_their_order_and_modes_even_for_one_host_path_twice(tmp_path: Path) -> None:
    shared = tmp_path / "checkout"
    inv = _inv(tmp_path, mounts=(Mount(shared, "/input/a", True), Mount(shared, "/input/b", True), Mount(tmp_path, "/cache", False)))
    spec = container_spec(NetworkConfig(), inv, False, None, None)
    assert spec.binds[1:] == ((str(shared), "/input/a", True), (str(shared), "/input/b", True), (str(tmp_path), "/cache", False))


def test_network_brings_proxies_and_the_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    network = NetworkConfig(ca_bundle=bundle, proxy_env={"HTTPS_PROXY": "http://p:1"})
    spec = container_spec(network, _inv(tmp_path, network=True), False, None, None)
    assert spec.host_config["network_mode"] == "bridge"
    assert spec.environment["HTTPS_PROXY"] == "http://p:1" and "SSL_CERT_FILE" in spec.environment
    assert any(source == str(bundle) and ro for source, _, ro in spec.binds)


def test_a_ca_bundle_that_is_not_a_file_is_refused_before_the_engine_makes_a_directory_of_it(tmp_path: Path) -> None:
    network = NetworkConfig(ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(HostPathError, match="is not a file"):
        container_spec(network, _inv(tmp_path, network=True), False, None, None)


def test_an_isolated_step_with_a_networked_setup_starts_on_the_bridge_without_proxy_env(tmp_path: Path) -> None:
    inv = _inv(tmp_path, setup_cmd=("true",), setup_network=True)
    spec = container_spec(NetworkConfig(proxy_env={"HTTPS_PROXY": "http://p:1"}), inv, True, None, None)
    assert spec.host_config["network_mode"] == "bridge"  # disconnected before cmd by the keeper
    assert "HTTPS_PROXY" not in spec.environment  # setup gets it through its exec env only
    assert spec.entrypoint == KEEPER_CMD and spec.user == ""  # the keeper is root; cmd is exec'd as the user


def test_hardening_and_resources_reach_the_host_config(tmp_path: Path) -> None:
    inv = _inv(tmp_path, read_only_rootfs=True, cap_drop=("ALL",), runtime="runsc", cpus=1.5, memory="256m", pids=64, user="1000")
    config = container_spec(NetworkConfig(), inv, False, None, None).host_config
    assert config["read_only"] is True and config["cap_drop"] == ["ALL"] and config["runtime"] == "runsc"
    assert (config["nano_cpus"], config["mem_limit"], config["pids_limit"]) == (1_500_000_000, "256m", 64)


def test_secrets_are_0400_files_in_a_private_dir_mounted_read_only(tmp_path: Path) -> None:
    inv = _inv(tmp_path, secrets=(SecretFile("token", b"s3cret"),), scratch_dir=tmp_path)
    directory = write_secrets(inv)
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert ((directory / "token").stat().st_mode & 0o777) == 0o400 and (directory / "token").read_bytes() == b"s3cret"
    spec = container_spec(NetworkConfig(), inv, False, directory, None)
    assert (str(directory / "token"), "/run/secrets/token", True) in spec.binds
    assert "s3cret" not in repr(spec)


@pytest.mark.parametrize("name", ["../x", "a/b", "", "."])
def test_a_secret_name_that_is_a_path_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ContainerError, match="invalid secret name"):
        write_secrets(_inv(tmp_path, secrets=(SecretFile(name, b"x"),), scratch_dir=tmp_path))


def test_missing_host_paths_are_refused_not_created_by_the_engine(tmp_path: Path) -> None:
    with pytest.raises(HostPathError, match="does not exist"):
        check_host_paths(_inv(tmp_path, mounts=(Mount(tmp_path / "nope", "/data", True),)))
    with pytest.raises(HostPathError, match="source"):
        check_host_paths(_inv(tmp_path, sources=((tmp_path / "gone", "/src"),)))


def test_the_owning_wrapper_gives_the_output_and_caches_back_and_keeps_cmd_as_argv(tmp_path: Path) -> None:
    inv = _inv(tmp_path, cmd=("python", "-c", "print('a b')"), mounts=(Mount(tmp_path, "/in", True), Mount(tmp_path, "/my cache", False)))
    assert owning_cmd(inv, None) == inv.cmd
    wrapped = owning_cmd(inv, (1000, 1000))
    assert wrapped[:2] == ("sh", "-c") and wrapped[3:] == ("sh", "python", "-c", "print('a b')")
    assert "chown -R 1000:1000 /output '/my cache'" in wrapped[2] and "/in" not in wrapped[2]
    assert owned_paths(inv) == ["/output", "/my cache"]
    assert kill_and_chown_cmd((5, 6), ["/output"])[3:] == ("5:6", "/output")
    assert (numeric_uid("1000:1000"), numeric_uid("nobody"), numeric_uid(None)) == (1000, None, None)


def test_phase_outcomes_say_what_happened(tmp_path: Path) -> None:
    inv = _inv(tmp_path, timeout_sec=1.5)
    assert finished(0, Phase.RUN).ok
    assert finished(3, Phase.SETUP).message == "setup failed with exit code 3"
    assert killed("timeout", Phase.RUN, inv).exit_code == TIMEOUT_EXIT_CODE and killed("timeout", Phase.RUN, inv).timed_out
    assert killed("timeout", Phase.RUN, inv).message == "timed out after 1.5s"
    assert killed("cancel", Phase.SETUP, inv) == cancelled(Phase.SETUP)
    result = to_result(cancelled(None), "sha256:x", 12.0)
    assert (result.exit_code, result.cancelled, result.image_id, result.started_at) == (CANCELLED_EXIT_CODE, True, "sha256:x", 12.0)


def test_wait_phase_returns_on_done_cancel_or_deadline() -> None:
    done, cancel, stop = threading.Event(), threading.Event(), threading.Event()
    done.set()
    assert wait_phase(done, cancel, stop, None) is None
    done.clear()
    cancel.set()
    assert wait_phase(done, cancel, stop, None) == "cancel"
    cancel.clear()
    assert wait_phase(done, cancel, stop, time.monotonic() + 0.05) == "timeout"


class _RefusingEngine:
    """An engine that refuses to start the container with ``status`` and ``explanation``."""

    def __init__(self, status: int, explanation: str) -> None:
        self.status, self.explanation = status, explanation

    def start(self, container_id: str) -> None:
        from docker.errors import APIError

        class Response:
            status_code = self.status
            reason = "refused"
            url = "http://engine/containers/x/start"

        raise APIError("refused", response=Response(), explanation=self.explanation)  # type: ignore[arg-type]


def test_a_container_the_engine_cannot_start_is_a_failed_step_not_a_pipex_error() -> None:
    missing = start(_RefusingEngine(500, 'exec: "nope": executable file not found in $PATH'), "c1")
    assert missing is not None and missing.exit_code == 127 and missing.message.startswith("cannot start:")
    other = start(_RefusingEngine(500, "unable to find user bob"), "c1", keeper=True)
    assert other is not None and other.exit_code == 126 and "need `sh` in the image" in (other.message or "")


def test_an_engine_error_about_the_request_is_a_pipex_error() -> None:
    with pytest.raises(ContainerError, match="starting a step's container"):
        start(_RefusingEngine(404, "no such container"), "c1")
