"""DockerExecutor against a real engine: isolation, phases, network, limits, logs, cleanup."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipex.errors import DockerUnavailableError, ImageError
from pipex.executor.base import ExecutionResult, Invocation, Mount, NetworkConfig, Phase, SecretFile
from pipex.executor.network import CONTAINER_CA_PATH, detect_network_config

BUSYBOX = "pipex-test/busybox:1"
PYTHON = "pipex-test/python:3"

pytestmark = pytest.mark.docker

MakeInvocation = Callable[..., Invocation]


def run(executor: Any, inv: Invocation, cancel: threading.Event | None = None) -> ExecutionResult:
    return executor.run(inv, cancel or threading.Event())


def stdout(inv: Invocation) -> str:
    return inv.stdout_path.read_text()


def mirror_url() -> str:
    """The Debian mirror the python image's apt uses (read from the image, not hard-coded)."""
    import docker

    api = docker.APIClient(version="auto")
    cid = api.create_container(PYTHON, command=["cat", "/etc/apt/sources.list"], network_disabled=True)["Id"]
    try:
        api.start(cid)
        api.wait(cid)
        line = next(line for line in api.logs(cid).decode().splitlines() if line.startswith("deb "))
        return line.split()[1].rstrip("/") + "/"
    finally:
        api.remove_container(cid, force=True)
        api.close()


FETCH = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10); print('reached')"


def running_container(docker_api: Any, labels: dict[str, str], timeout: float = 20) -> dict[str, Any]:
    """Wait until a running container with these labels exists and return its inspect data."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()], "status": "running"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = docker_api.containers(filters=filters)
        if found:
            return docker_api.inspect_container(found[0]["Id"])
        time.sleep(0.05)
    raise AssertionError(f"no running container with labels {labels}")


@contextmanager
def in_thread(fn: Callable[[], ExecutionResult]) -> Iterator[dict[str, ExecutionResult]]:
    box: dict[str, ExecutionResult] = {}
    thread = threading.Thread(target=lambda: box.__setitem__("result", fn()))
    thread.start()
    try:
        yield box
    finally:
        thread.join(60)
        assert not thread.is_alive()


def _non_root_caller() -> pwd.struct_passwd:
    """The user pipex runs as in these tests: this one if not root, else provisioning's test user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    return pwd.getpwnam(os.environ.get("PIPEX_TEST_USER", "pipex-test"))


def _as_caller(caller: pwd.struct_passwd) -> list[str]:
    """A command prefix running as ``caller`` (with its groups, e.g. docker)."""
    if os.geteuid() == caller.pw_uid:
        return []
    return ["setpriv", f"--reuid={caller.pw_uid}", f"--regid={caller.pw_gid}", "--init-groups"]


# -- output, inputs, mounts, sources, env ------------------------------------


def test_simple_step_writes_output_and_reports_image_id(executor: Any, make_invocation: MakeInvocation) -> None:
    inv = make_invocation("mkdir -p /output/d && echo hello > /output/d/f && echo done")
    result = run(executor, inv)
    assert result.ok and result.exit_code == 0 and result.failed_phase is None and result.message is None
    assert (inv.output_dir / "d" / "f").read_text() == "hello\n"
    assert stdout(inv) == "done\n"
    assert result.image_id == executor.resolve_images([BUSYBOX])[BUSYBOX]
    assert result.started_at <= result.finished_at


def test_failing_cmd_reports_exit_code_and_phase(executor: Any, make_invocation: MakeInvocation) -> None:
    result = run(executor, make_invocation("echo oops >&2; exit 3"))
    assert (result.exit_code, result.failed_phase, result.message) == (3, Phase.RUN, "cmd failed with exit code 3")
    assert not result.ok and not result.timed_out and not result.cancelled


@pytest.mark.parametrize("user", [None, "65534:65534"], ids=["root-step", "user-step"])
def test_output_is_given_to_a_non_root_caller_who_can_remove_it(
    executor: Any, make_invocation: MakeInvocation, user: str | None
) -> None:
    caller = _non_root_caller()
    staging = Path(tempfile.mkdtemp(prefix="pipex-owner-"))
    try:
        output_dir = staging / "out"
        output_dir.mkdir()
        os.chmod(output_dir, 0o777)  # so a step running as nobody can write
        if os.geteuid() == 0:
            os.chown(staging, caller.pw_uid, caller.pw_gid)
            os.chown(output_dir, caller.pw_uid, caller.pw_gid)
        inv = make_invocation(
            "mkdir -p /output/a/b && echo x > /output/a/b/f && chmod 700 /output/a",
            output_dir=output_dir,
            owner=(caller.pw_uid, caller.pw_gid),
            user=user,
        )
        assert run(executor, inv).ok
        for path in [output_dir / "a", output_dir / "a" / "b", output_dir / "a" / "b" / "f"]:
            assert (path.stat().st_uid, path.stat().st_gid) == (caller.pw_uid, caller.pw_gid), path
        subprocess.run([*_as_caller(caller), "rm", "-rf", str(output_dir)], check=True)
        assert not output_dir.exists()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def test_inputs_and_mounts_are_read_only_caches_writable(
    executor: Any, make_invocation: MakeInvocation, tmp_path: Path
) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "data.txt").write_text("in\n")
    host_mount = tmp_path / "host"
    host_mount.mkdir()
    (host_mount / "conf").write_text("c\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    script = (
        "cat /input/up/data.txt /mnt/host/conf > /output/seen;"
        "if echo no > /input/up/data.txt; then echo input-writable; fi;"
        "if touch /input/up/new; then echo input-writable; fi;"
        "if touch /mnt/host/new; then echo mount-writable; fi;"
        "echo cached > /cache/entry"
    )
    inv = make_invocation(
        script,
        mounts=(
            Mount(upstream, "/input/up"),
            Mount(host_mount, "/mnt/host"),
            Mount(cache, "/cache", read_only=False),
        ),
    )
    assert run(executor, inv).ok
    assert "writable" not in stdout(inv)
    assert (inv.output_dir / "seen").read_text() == "in\nc\n"
    assert (upstream / "data.txt").read_text() == "in\n" and not (upstream / "new").exists()
    assert not (host_mount / "new").exists()
    assert (cache / "entry").read_text() == "cached\n"


def test_sources_are_copied_in_before_start(executor: Any, make_invocation: MakeInvocation, tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    (src_dir / "pkg").mkdir(parents=True)
    (src_dir / "pkg" / "mod.py").write_text("print('m')\n")
    single = tmp_path / "script.sh"
    single.write_text("echo from-script\n")
    inv = make_invocation(
        "sh /opt/tools/script.sh; cat /app/pkg/mod.py; echo changed > /app/pkg/mod.py",
        sources=((src_dir, "/app"), (single, "/opt/tools/script.sh")),
    )
    assert run(executor, inv).ok
    assert stdout(inv) == "from-script\nprint('m')\n"
    assert (src_dir / "pkg" / "mod.py").read_text() == "print('m')\n"  # a copy, not a mount


def test_only_declared_env_reaches_the_step(
    executor: Any, make_invocation: MakeInvocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPEX_HOST_ONLY_SECRET", "leaked")
    inv = make_invocation("env", env={"GREETING": "hi there"})
    assert run(executor, inv).ok
    env = stdout(inv)
    assert "GREETING=hi there" in env
    assert "PIPEX_HOST_ONLY_SECRET" not in env and "leaked" not in env


# -- network -----------------------------------------------------------------


def test_network_is_none_by_default_and_allowed_on_request(
    executor: Any, make_invocation: MakeInvocation, docker_api: Any, test_labels: dict[str, str]
) -> None:
    url = mirror_url()
    isolated = make_invocation(("python3", "-c", FETCH, url), image=PYTHON)
    result = run(executor, isolated)
    assert result.exit_code != 0 and "reached" not in stdout(isolated)
    allowed = make_invocation(("python3", "-c", FETCH, url), image=PYTHON, network=True)
    result = run(executor, allowed)
    assert result.ok, allowed.stderr_path.read_text()
    assert stdout(allowed) == "reached\n"


def test_setup_installs_with_network_then_run_phase_is_isolated(
    executor: Any, make_invocation: MakeInvocation
) -> None:
    locked: list[str] = []

    @contextmanager
    def setup_lock() -> Iterator[None]:
        locked.append("acquired")
        yield
        locked.append("released")

    check = f"import six; print('six', six.__version__); {FETCH}"
    inv = make_invocation(
        ("python3", "-c", check, mirror_url()),
        image=PYTHON,
        setup_cmd=("pip", "install", "--no-cache-dir", "--disable-pip-version-check", "-q", "six"),
        setup_network=True,
        setup_lock=setup_lock,
        timeout_sec=300,
    )
    result = run(executor, inv)
    assert locked == ["acquired", "released"]
    assert result.failed_phase is Phase.RUN, inv.stderr_path.read_text()  # setup succeeded; the fetch failed
    assert stdout(inv).startswith("six ") and "reached" not in stdout(inv)


def test_failing_setup_reports_the_setup_phase(executor: Any, make_invocation: MakeInvocation) -> None:
    inv = make_invocation("echo never", setup_cmd=("sh", "-c", "echo preparing; exit 3"))
    result = run(executor, inv)
    assert (result.exit_code, result.failed_phase) == (3, Phase.SETUP)
    assert result.message == "setup failed with exit code 3"
    assert stdout(inv) == "preparing\n"


def test_ca_bundle_and_proxy_vars_reach_network_phases_only(
    make_invocation: MakeInvocation, tmp_path: Path
) -> None:
    from pipex.executor.docker import DockerExecutor

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    network = NetworkConfig(ca_bundle=bundle, proxy_env={"HTTPS_PROXY": "http://proxy.invalid:3128", "no_proxy": "x"})
    ex = DockerExecutor(network=network)
    show = "env | grep -E '_PROXY|_proxy|CERT|CA_BUNDLE' | sort; cat $SSL_CERT_FILE 2>/dev/null | head -1; echo '=== end'"
    try:
        phased = make_invocation(show, setup_cmd=("sh", "-c", show), setup_network=True)
        assert run(ex, phased).ok
        setup_out, run_out, _ = stdout(phased).split("=== end\n")
        for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
            assert f"{var}={CONTAINER_CA_PATH}" in setup_out
        assert "HTTPS_PROXY=http://proxy.invalid:3128" in setup_out and "no_proxy=x" in setup_out
        assert "-----BEGIN CERTIFICATE-----" in setup_out
        assert run_out == ""

        networked = make_invocation(show, network=True)
        assert run(ex, networked).ok
        assert f"SSL_CERT_FILE={CONTAINER_CA_PATH}" in stdout(networked) and "HTTPS_PROXY" in stdout(networked)

        isolated = make_invocation(f"{show}; test -e {CONTAINER_CA_PATH} && echo bundle-visible; true")
        assert run(ex, isolated).ok
        assert stdout(isolated) == "=== end\n"
    finally:
        ex.close()


def test_detect_network_config_prefers_configured_then_ssl_cert_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    first.write_text("a")
    second.write_text("b")
    environ = {"SSL_CERT_FILE": str(tmp_path / "missing.pem"), "PIP_CERT": str(second), "HTTP_PROXY": "http://p:1"}
    assert detect_network_config(first, environ).ca_bundle == first
    detected = detect_network_config(None, environ)
    assert detected.ca_bundle == second and dict(detected.proxy_env) == {"HTTP_PROXY": "http://p:1"}
    assert detect_network_config(None, {}).ca_bundle is None


# -- timeouts, cancel, Ctrl-C ---------------------------------------------------


@pytest.mark.parametrize(
    "variant", ["direct", "owner-wrapper", "keeper"], ids=["direct", "owner-wrapper", "keeper"]
)
def test_timeout_kills_the_step_with_124_and_leaves_no_container(
    executor: Any, make_invocation: MakeInvocation, docker_api: Any, test_labels: dict[str, str], variant: str
) -> None:
    extra: dict[str, Any] = {"owner": (0, 0)}
    if variant == "owner-wrapper":
        extra = {"owner": (4242, 4242)}
    elif variant == "keeper":
        extra = {"setup_cmd": ("true",), "owner": (4242, 4242)}
    inv = make_invocation("mkdir /output/d; echo started; sleep 60", timeout_sec=1, **extra)
    began = time.monotonic()
    result = run(executor, inv)
    assert time.monotonic() - began < 15
    assert (result.exit_code, result.timed_out, result.failed_phase) == (124, True, Phase.RUN)
    assert result.message == "timed out after 1s"
    assert stdout(inv) == "started\n"
    assert docker_api.containers(all=True, filters={"label": f"pipex.test={test_labels['pipex.test']}"}) == []
    if variant != "direct":
        assert (inv.output_dir / "d").stat().st_uid == 4242  # ownership fixed on the kill path too


def test_timeout_in_setup_is_reported_for_the_setup_phase(executor: Any, make_invocation: MakeInvocation) -> None:
    result = run(executor, make_invocation("true", setup_cmd=("sleep", "60"), timeout_sec=1))
    assert (result.exit_code, result.timed_out, result.failed_phase) == (124, True, Phase.SETUP)


def test_cancel_kills_promptly(executor: Any, make_invocation: MakeInvocation, docker_api: Any,
                               test_labels: dict[str, str]) -> None:
    cancel = threading.Event()
    inv = make_invocation("sleep 60")
    with in_thread(lambda: run(executor, inv, cancel)) as box:
        running_container(docker_api, test_labels)
        cancelled_at = time.monotonic()
        cancel.set()
    assert time.monotonic() - cancelled_at < 5
    result = box["result"]
    assert result.cancelled and not result.timed_out and result.exit_code == 130


def test_cancel_before_start_runs_nothing(executor: Any, make_invocation: MakeInvocation) -> None:
    cancel = threading.Event()
    cancel.set()
    inv = make_invocation("echo ran > /output/f")
    assert run(executor, inv, cancel).cancelled
    assert not (inv.output_dir / "f").exists()


def test_stop_all_stops_and_removes_running_steps(
    make_invocation: MakeInvocation, docker_api: Any, test_labels: dict[str, str]
) -> None:
    from pipex.executor.docker import DockerExecutor

    ex = DockerExecutor()
    try:
        invs = [make_invocation("sleep 60"), make_invocation("sleep 60", setup_cmd=("true",))]
        threads = []
        results: list[ExecutionResult] = []
        for inv in invs:
            thread = threading.Thread(target=lambda inv=inv: results.append(ex.run(inv, threading.Event())))
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + 20
        while len(docker_api.containers(filters={"label": f"pipex.test={test_labels['pipex.test']}"})) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # let the keeper step reach its cmd
        signal_thread = threading.Thread(target=ex.stop_all)  # as a signal handler would
        signal_thread.start()
        signal_thread.join(30)
        for thread in threads:
            thread.join(30)
        assert len(results) == 2 and all(r.cancelled for r in results)
        assert docker_api.containers(all=True, filters={"label": f"pipex.test={test_labels['pipex.test']}"}) == []
    finally:
        ex.close()


# -- logs ------------------------------------------------------------------------


def test_logs_stream_to_files_while_the_step_runs(executor: Any, make_invocation: MakeInvocation) -> None:
    lines: list[tuple[str, str]] = []
    inv = make_invocation(
        "echo first; echo warn >&2; sleep 3; printf 'last-no-newline'",
        on_log=lambda stream, line: lines.append((stream, line)),
    )
    with in_thread(lambda: run(executor, inv)) as box:
        deadline = time.monotonic() + 20
        def grown() -> bool:
            paths = (inv.stdout_path, inv.stderr_path)
            return all(p.exists() for p in paths) and [p.read_text() for p in paths] == ["first\n", "warn\n"]

        while not grown():
            assert time.monotonic() < deadline, "the log files did not grow while the step ran"
            time.sleep(0.05)
        assert "result" not in box  # seen before the step ended (it sleeps 3 s more)
    assert box["result"].ok
    assert stdout(inv) == "first\nlast-no-newline"
    # stdout and stderr are separate pipes: order is kept within a stream only.
    assert [line for stream, line in lines if stream == "stdout"] == ["first", "last-no-newline"]
    assert [line for stream, line in lines if stream == "stderr"] == ["warn"]


def test_huge_output_is_streamed_not_accumulated(executor: Any, make_invocation: MakeInvocation) -> None:
    longest = 0

    def on_log(stream: str, line: str) -> None:
        nonlocal longest
        longest = max(longest, len(line))

    # 64 MiB without a single newline: on_log gets bounded pieces, the file gets everything.
    inv = make_invocation("head -c 67108864 /dev/zero | tr '\\0' a", on_log=on_log)
    assert run(executor, inv).ok
    assert inv.stdout_path.stat().st_size == 64 << 20
    assert 0 < longest <= (1 << 20) + 65536


def test_logs_are_appended_across_attempts(executor: Any, make_invocation: MakeInvocation) -> None:
    inv = make_invocation("echo attempt")
    assert run(executor, inv).ok and run(executor, inv).ok
    assert stdout(inv) == "attempt\nattempt\n"


# -- secrets, hardening, resources ---------------------------------------------------


def test_secrets_are_files_not_env_and_are_deleted_afterwards(
    executor: Any, make_invocation: MakeInvocation
) -> None:
    before = set(Path(tempfile.gettempdir()).glob("pipex-secrets-*"))
    inv = make_invocation(
        "cat /run/secrets/token; echo; stat -c '%a' /run/secrets/token; env | grep -c s3cr3t-value; true",
        secrets=(SecretFile("token", b"s3cr3t-value"),),
    )
    assert run(executor, inv).ok
    assert stdout(inv).splitlines() == ["s3cr3t-value", "400", "0"]
    assert set(Path(tempfile.gettempdir()).glob("pipex-secrets-*")) == before
    assert "s3cr3t" not in repr(inv.secrets)


def test_hardening_and_resources_are_applied(
    executor: Any, make_invocation: MakeInvocation, docker_api: Any, test_labels: dict[str, str]
) -> None:
    inv = make_invocation(
        "touch /rootfs-file 2>/dev/null && echo rootfs-writable; id -u; sleep 2",
        user="65534",
        read_only_rootfs=True,
        cap_drop=("NET_RAW", "MKNOD"),
        runtime="runc",
        cpus=0.5,
        memory="64m",
        pids=50,
        env={"ONLY": "this"},
        owner=(0, 0),  # no ownership fix: the step runs as its container's main process
    )
    with in_thread(lambda: run(executor, inv)) as box:
        info = running_container(docker_api, test_labels)
    host = info["HostConfig"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert set(host["CapDrop"]) == {"NET_RAW", "MKNOD"}
    assert host["Runtime"] == "runc"
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 << 20
    assert host["PidsLimit"] == 50
    assert info["Config"]["User"] == "65534"
    assert info["Config"]["Labels"]["pipex.step"] == inv.step_id
    assert box["result"].ok
    assert stdout(inv) == "65534\n"


# -- images, daemon, leftovers ---------------------------------------------------


def test_missing_image_is_one_line_image_error(executor: Any, make_invocation: MakeInvocation) -> None:
    with pytest.raises(ImageError) as raised:
        executor.ensure_image("pipex-test/does-not-exist:1")
    message = str(raised.value)
    assert message.startswith("image 'pipex-test/does-not-exist:1' not found locally and cannot be pulled: ")
    assert "\n" not in message and raised.value.exit_code == 1
    with pytest.raises(ImageError):
        run(executor, make_invocation("true", image="pipex-test/does-not-exist:1"))


def test_ensure_image_returns_the_local_id(executor: Any) -> None:
    progress: list[str] = []
    image_id = executor.ensure_image(BUSYBOX, progress.append)
    assert image_id.startswith("sha256:") and progress == []


def test_daemon_down_is_one_line_naming_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipex.executor.docker import DockerExecutor

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    ex = DockerExecutor()
    with pytest.raises(DockerUnavailableError) as raised:
        ex.resolve_images([BUSYBOX])
    message = str(raised.value)
    assert "DOCKER_HOST=unix:///nonexistent" in message and "\n" not in message
    assert raised.value.exit_code == 2


def test_remote_docker_host_is_refused_because_bind_mounts_need_a_local_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipex.executor.docker import DockerExecutor

    monkeypatch.setenv("DOCKER_HOST", "tcp://build-server.example:2376")
    with pytest.raises(DockerUnavailableError, match="not a local Docker engine"):
        DockerExecutor().resolve_images([BUSYBOX])


def test_remove_leftovers_removes_containers_of_killed_processes(
    executor: Any, docker_api: Any, test_labels: dict[str, str]
) -> None:
    leftover_labels = {**test_labels, "pipex.workspace": "ws"}
    for _ in range(2):
        cid = docker_api.create_container(BUSYBOX, command=["sleep", "60"], labels=leftover_labels)["Id"]
        docker_api.start(cid)
    other = docker_api.create_container(BUSYBOX, command=["true"], labels={**test_labels, "pipex.workspace": "other"})
    try:
        assert executor.remove_leftovers(leftover_labels) == 2
        remaining = docker_api.containers(all=True, filters={"label": f"pipex.test={test_labels['pipex.test']}"})
        assert [c["Id"] for c in remaining] == [other["Id"]]
    finally:
        docker_api.remove_container(other["Id"], force=True)


def test_resolve_images_uses_one_api_call(executor: Any) -> None:
    executor.resolve_images([])  # connect first: the version handshake is not part of the count
    calls: list[str] = []
    executor.api.hooks["response"].append(lambda response, **_: calls.append(response.url))
    try:
        resolved = executor.resolve_images([BUSYBOX, PYTHON, "pipex-test/absent:1", "docker.io/" + BUSYBOX])
    finally:
        executor.api.hooks["response"].pop()
    assert len(calls) == 1
    assert resolved[BUSYBOX] and resolved[PYTHON] and resolved["docker.io/" + BUSYBOX] == resolved[BUSYBOX]
    assert resolved["pipex-test/absent:1"] is None
    assert executor.resolve_images([resolved[BUSYBOX]]) == {resolved[BUSYBOX]: resolved[BUSYBOX]}


def test_importing_the_contract_does_not_import_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    # A fresh import in this process: forget docker and pipex.executor for the test's duration.
    for name in list(sys.modules):
        if name == "docker" or name.startswith(("docker.", "pipex.executor")):
            monkeypatch.delitem(sys.modules, name)
    importlib.import_module("pipex.executor.base")
    importlib.import_module("pipex.executor.network")
    importlib.import_module("pipex.executor")
    assert "docker" not in sys.modules


@pytest.mark.parametrize("setup", [None, ("true",)], ids=["direct", "keeper"])
def test_missing_command_fails_the_step_with_127(
    executor: Any, make_invocation: MakeInvocation, setup: tuple[str, ...] | None
) -> None:
    result = run(executor, make_invocation(("/no/such/tool", "arg"), setup_cmd=setup))
    assert (result.exit_code, result.failed_phase) == (127, Phase.RUN) or (
        setup is not None and result.exit_code in (126, 127)
    )
    assert not result.ok and result.message


def test_keeper_mode_runs_setup_as_root_and_cmd_as_the_step_user_with_its_env(
    executor: Any, make_invocation: MakeInvocation
) -> None:
    inv = make_invocation(
        "id -u; echo $WHO",
        setup_cmd=("sh", "-c", "id -u; echo setup-$WHO"),
        user="65534",
        env={"WHO": "me"},
    )
    assert run(executor, inv).ok
    assert stdout(inv) == "0\nsetup-me\n65534\nme\n"


def test_a_hardened_step_installs_in_setup_then_runs_hardened_from_its_snapshot(
    executor: Any, make_invocation: MakeInvocation, docker_api: Any, test_labels: dict[str, str]
) -> None:
    inv = make_invocation(
        "cat /opt/tool; id -u; (touch /etc/x 2>/dev/null && echo writable || echo read-only);"
        " grep CapEff /proc/self/status; cp /opt/tool /output/tool",
        setup_cmd=("sh", "-c", "mkdir -p /opt && echo installed > /opt/tool && grep CapEff /proc/self/status"),
        user="65534",
        read_only_rootfs=True,
        cap_drop=("ALL",),
        timeout_sec=60,
    )
    os.chmod(inv.output_dir, 0o777)  # the runner does this for a step with its own user
    result = run(executor, inv)
    assert result.ok, (result, inv.stderr_path.read_text())
    lines = stdout(inv).splitlines()
    setup_caps, tool, uid, rootfs, run_caps = lines
    assert setup_caps != "CapEff:\t0000000000000000"  # setup kept the default capabilities
    assert (tool, uid, rootfs, run_caps) == ("installed", "65534", "read-only", "CapEff:\t0000000000000000")
    assert (inv.output_dir / "tool").read_text() == "installed\n"
    assert result.image_id == executor.ensure_image(inv.image)  # the image the fingerprint names, not the snapshot
    left = docker_api.images(filters={"label": f"pipex.test={test_labels['pipex.test']}"})
    assert left == [], "the setup snapshot was not removed"


def test_invalid_resource_value_is_a_one_line_pipex_error(executor: Any, make_invocation: MakeInvocation) -> None:
    from pipex.errors import ContainerError

    with pytest.raises(ContainerError) as raised:
        run(executor, make_invocation("true", memory="lots"))
    assert "memory" in str(raised.value) and "\n" not in str(raised.value)


def test_parallel_runs_from_worker_threads_keep_their_outputs_and_logs_apart(
    executor: Any, make_invocation: MakeInvocation
) -> None:
    invs = [make_invocation(f"echo {n} > /output/n; echo log-{n}; echo err-{n} >&2", step_id=f"p{n}") for n in range(8)]
    results: dict[int, ExecutionResult] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, run(executor, invs[n]))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for n, inv in enumerate(invs):
        assert results[n].ok
        assert (inv.output_dir / "n").read_text() == f"{n}\n"
        assert stdout(inv) == f"log-{n}\n" and inv.stderr_path.read_text() == f"err-{n}\n"


def test_big_sources_are_streamed_in(executor: Any, make_invocation: MakeInvocation, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.write(os.urandom(1 << 20) * 24)  # 24 MiB: over the in-memory spool limit
    inv = make_invocation("wc -c < /data/big.bin", sources=((big, "/data/big.bin"),))
    assert run(executor, inv).ok
    assert stdout(inv).strip() == str(24 << 20)


_AS_CALLER = """
import json, shutil, sys, threading
from pathlib import Path
from pipex.executor.base import Invocation
from pipex.executor.docker import DockerExecutor
staging, labels = Path(sys.argv[1]), json.loads(sys.argv[2])
ex = DockerExecutor()
outcomes = []
for n, (timeout, setup) in enumerate([(None, None), (1, None), (None, ("true",)), (1, ("true",))]):
    out = staging / f"out{n}"
    out.mkdir()
    inv = Invocation(step_id=f"s{n}", image="pipex-test/busybox:1", env={}, output_dir=out,
        cmd=("sh", "-c", "mkdir -p /output/a/b && echo x > /output/a/b/f && chmod 700 /output/a && sleep 30"
             if timeout else "mkdir -p /output/a/b && echo x > /output/a/b/f && chmod 700 /output/a"),
        stdout_path=staging / f"log{n}", stderr_path=staging / f"err{n}", timeout_sec=timeout,
        setup_cmd=setup, labels=labels)
    result = ex.run(inv, threading.Event())
    shutil.rmtree(out)  # raises if the caller cannot remove what root wrote
    outcomes.append(result.exit_code)
print(json.dumps(outcomes))
"""


def test_a_non_root_caller_in_the_docker_group_can_remove_every_output(
    test_labels: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    caller = _non_root_caller()
    staging = Path(tempfile.mkdtemp(prefix="pipex-caller-"))
    try:
        if os.geteuid() != 0:  # already the non-root caller: run the scenario here
            monkeypatch.setattr(sys, "argv", ["as-caller", str(staging), json.dumps(test_labels)])
            exec(compile(_AS_CALLER, "as-caller", "exec"), {"__name__": "__main__"})
            assert json.loads(capsys.readouterr().out) == [0, 124, 0, 124]
            return
        os.chown(staging, caller.pw_uid, caller.pw_gid)
        done = subprocess.run(
            [*_as_caller(caller), sys.executable, "-c", _AS_CALLER, str(staging), json.dumps(test_labels)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": caller.pw_dir},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [0, 124, 0, 124]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def test_missing_host_paths_are_refused_before_any_container(
    executor: Any, make_invocation: MakeInvocation, tmp_path: Path
) -> None:
    from pipex.errors import HostPathError

    with pytest.raises(HostPathError, match="does not exist"):
        run(executor, make_invocation("true", mounts=(Mount(tmp_path / "absent", "/mnt/x"),)))
    with pytest.raises(HostPathError, match="does not exist"):
        run(executor, make_invocation("true", sources=((tmp_path / "absent.py", "/app/a.py"),)))
    assert not (tmp_path / "absent").exists()


def test_run_uses_the_image_ensure_image_resolved(executor: Any, make_invocation: MakeInvocation) -> None:
    image_id = executor.ensure_image(BUSYBOX)
    calls: list[str] = []  # the same count with or without the ownership wrapper
    executor.api.hooks["response"].append(lambda response, **_: calls.append(response.request.method + " " + response.url))
    try:
        result = run(executor, make_invocation("true"))
    finally:
        executor.api.hooks["response"].pop()
    assert result.ok and result.image_id == image_id
    assert not any("/images/" in call for call in calls)
    # create, start, logs (follow), wait, logs (catch-up), remove: the bare cycle plus the log reads.
    assert len(calls) == 6, calls


def test_a_failing_log_callback_does_not_hang_the_step(executor: Any, make_invocation: MakeInvocation) -> None:
    def on_log(stream: str, line: str) -> None:
        raise RuntimeError("terminal gone")

    inv = make_invocation("head -c 4194304 /dev/zero | tr '\\0' 'a' | fold -w 100; echo end", on_log=on_log, timeout_sec=60)
    result = run(executor, inv)
    assert result.ok and not result.timed_out
    assert inv.stdout_path.stat().st_size == (4 << 20) + (4 << 20) // 100 + len("end\n")  # the log file still got everything


def test_a_missing_ca_bundle_is_reported_not_mounted_as_a_directory(
    make_invocation: MakeInvocation, tmp_path: Path
) -> None:
    from pipex.errors import HostPathError
    from pipex.executor.docker import DockerExecutor

    missing = tmp_path / "nope.pem"
    ex = DockerExecutor(network=NetworkConfig(ca_bundle=missing))
    try:
        with pytest.raises(HostPathError, match="caBundle"):
            run(ex, make_invocation("true", network=True))
        assert run(ex, make_invocation("true")).ok  # isolated steps do not need it
        assert not missing.exists()
    finally:
        ex.close()


def test_isolated_setup_of_a_networked_step_has_no_network_until_cmd(
    executor: Any, make_invocation: MakeInvocation
) -> None:
    url = mirror_url()
    probe = "import sys, urllib.request\ntry:\n    urllib.request.urlopen(sys.argv[1], timeout=10); print('reached')\nexcept OSError: print('offline')"
    inv = make_invocation(
        ("python3", "-c", probe, url),
        image=PYTHON,
        setup_cmd=("python3", "-c", probe, url),
        network=True,
    )
    assert run(executor, inv).ok, inv.stderr_path.read_text()
    assert stdout(inv) == "offline\nreached\n"


def test_output_of_fast_steps_is_logged_exactly_once(executor: Any, make_invocation: MakeInvocation) -> None:
    # Regression: attaching before start lost early output or (with logs=1) doubled it.
    invs = [make_invocation("echo out; echo err >&2") for _ in range(48)]
    results: list[ExecutionResult] = []

    def work(chunk: list[Invocation]) -> None:
        for inv in chunk:
            results.append(run(executor, inv))

    threads = [threading.Thread(target=work, args=(invs[k::8],)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 48 and all(r.ok for r in results)
    assert [(stdout(i), i.stderr_path.read_text()) for i in invs] == [("out\n", "err\n")] * 48


@pytest.mark.parametrize("setup", [None, ("true",)], ids=["direct", "keeper"])
def test_a_step_silent_for_longer_than_the_api_timeout_still_finishes(
    executor: Any, make_invocation: MakeInvocation, setup: tuple[str, ...] | None
) -> None:
    executor.api.timeout = 1  # the streams must not inherit the per-request timeout
    inv = make_invocation("sleep 3; echo done", setup_cmd=setup)
    result = run(executor, inv)
    assert result.ok, result
    assert stdout(inv) == "done\n"
