"""Reliability fixtures: pipex as real processes on temp stores, container leak checks, iteration knobs.

Every test here drives ``python -m pipex`` (or ``pipex.api``) against a store
of its own and, afterwards, removes and reports any container labelled with
that store. Iteration counts default to the minimums issue 7 asks for and can
be raised (or lowered while iterating) with ``PIPEX_RELIABILITY_<NAME>``.

Unprivileged runs: the venv's interpreter lives under ``/root`` (mode 0700),
so the ``pipex-test`` user cannot execute it. `unprivileged` instead runs the
system ``python3.11`` (same minor version, so the venv's compiled wheels load)
with ``PYTHONPATH`` naming the checkout and the venv's site-packages, both
world-readable; the project and store live in a world-writable temp dir owned
by that user.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = "pipex-test/busybox:1"
PYTHON = "pipex-test/python:3"
NODE = "pipex-test/node:18"
REPO = Path(__file__).resolve().parents[2]
UNPRIVILEGED_USER = "pipex-test"

KIT_IMAGES = f"""\
kits:
  shell: {{image: "{BUSYBOX}"}}
  python: {{image: "{PYTHON}"}}
  node: {{image: "{NODE}"}}
"""


def iterations(name: str, default: int) -> int:
    """``PIPEX_RELIABILITY_<NAME>`` as an int, else ``default`` (the issue's minimum)."""
    value = os.environ.get(f"PIPEX_RELIABILITY_{name.upper()}")
    return int(value) if value else default


@pytest.fixture(autouse=True)
def _private_spec_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the spec cache of these tests (and of the pipex processes they start) out of the user's."""
    monkeypatch.setenv("PIPEX_CACHE_DIR", str(tmp_path_factory.mktemp("spec-cache")))


def _api(docker_host: str | None = None) -> Any:
    """A low-level docker-py client for ``docker_host`` (default: the environment's)."""
    import docker

    return docker.APIClient(base_url=docker_host, version="auto") if docker_host else docker.APIClient(version="auto")


def containers(store: Path, docker_host: str | None = None) -> list[dict[str, Any]]:
    """Every container (running or not) labelled with ``store``, as the engine lists them (``Labels``, ``Names``…)."""
    api = _api(docker_host)
    try:
        return api.containers(all=True, filters={"label": f"pipex.store={store.resolve()}"})
    finally:
        api.close()


def wait_running(store: Path, step: str, timeout: float = 60) -> None:
    """Block until a container of ``step`` (labelled with ``store``) is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c["Labels"].get("pipex.step") == step and c["State"] == "running" for c in containers(store)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no running container for step {step}")


def remove_containers(store: Path, docker_host: str | None = None) -> list[str]:
    """Force-remove the containers labelled with ``store``; return their names."""
    import docker

    names = []
    api = _api(docker_host)
    try:
        for container in api.containers(all=True, filters={"label": f"pipex.store={store.resolve()}"}):
            names.append(container["Names"][0] if container.get("Names") else container["Id"])
            try:
                api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
    finally:
        api.close()
    return names


@dataclass
class Events:
    """NDJSON events of one ``pipex --json`` process, read live on a thread."""

    items: list[dict[str, Any]] = field(default_factory=list)
    _queue: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)

    def feed(self, stream: Any) -> None:
        """Read ``stream`` line by line until EOF (run on a thread)."""
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "TEXT", "line": line}
            self.items.append(event)
            self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any] | None:
        """Block until an event matches ``predicate``; None on EOF or timeout."""
        for event in self.items:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if event is None:
                return None
            if predicate(event):
                return event
        return None

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Events of one kind."""
        return [e for e in self.items if e.get("event") == kind]

    def steps(self, kind: str) -> set[str]:
        """Step ids of the events of one kind."""
        return {e["step"] for e in self.of(kind) if "step" in e}


@dataclass
class PipexProcess:
    """A running ``python -m pipex`` with its stderr collected and, for --json, its events."""

    proc: subprocess.Popen[str]
    events: Events
    _threads: list[threading.Thread]
    _stderr: list[str]

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def wait(self, timeout: float = 120) -> int:
        """Wait for the exit (killing it after ``timeout``); return the exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    @property
    def stderr(self) -> str:
        """Everything written on stderr so far."""
        return "".join(self._stderr)

    @property
    def stdout(self) -> str:
        """Stdout as text (the raw lines of non-JSON events included)."""
        return "\n".join(e["line"] if e.get("event") == "TEXT" else json.dumps(e) for e in self.events.items)


def _drain(stream: Any, sink: list[str]) -> None:
    """Append every line of ``stream`` to ``sink`` until EOF (run on a thread)."""
    for line in stream:
        sink.append(line)


def start_pipex(
    *args: str,
    store: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> PipexProcess:
    """Start ``python -m pipex ARGS`` (as ``user`` when given) and read its output on threads."""
    full_env = dict(os.environ, NO_COLOR="1")
    if store is not None:
        full_env["PIPEX_STORE"] = str(store)
    full_env.update(env or {})
    command = [sys.executable, "-m", "pipex", *args]
    kwargs: dict[str, Any] = {}
    if user is not None:
        command, full_env = _as_user(command, full_env, user)
        kwargs["user"] = user
        kwargs["group"] = pwd.getpwnam(user).pw_gid
        kwargs["extra_groups"] = os.getgrouplist(user, pwd.getpwnam(user).pw_gid)
    proc = subprocess.Popen(
        command,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        **kwargs,
    )
    events = Events()
    err: list[str] = []
    threads = [
        threading.Thread(target=events.feed, args=(proc.stdout,), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for thread in threads:
        thread.start()
    return PipexProcess(proc, events, threads, err)


def run_pipex(*args: str, timeout: float = 180, **kwargs: Any) -> PipexProcess:
    """Run ``python -m pipex ARGS`` to completion; the result carries returncode, events, stderr."""
    process = start_pipex(*args, **kwargs)
    process.wait(timeout)
    return process


def _as_user(command: list[str], env: dict[str, str], user: str) -> tuple[list[str], dict[str, str]]:
    """The command line and env that run pipex as ``user`` (see the module docstring)."""
    interpreter = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
    if interpreter is None:
        pytest.skip(f"no system python{sys.version_info.major}.{sys.version_info.minor} for the unprivileged user")
    site = sysconfig.get_paths()["purelib"]
    home = pwd.getpwnam(user).pw_dir
    env = dict(env, PYTHONPATH=f"{REPO}{os.pathsep}{site}", HOME=home, USER=user, LOGNAME=user)
    return [interpreter, *command[1:]], env


def assert_one_line_errors(stderr: str) -> None:
    """stderr holds no traceback and each line is a ``pipex:`` message."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "an error must say something"
    assert all(line.startswith("pipex: ") for line in lines), stderr


def verify_store(store: Path, **kwargs: Any) -> dict[str, Any]:
    """Run ``pipex verify --json`` on ``store``; assert it is clean and return the report."""
    process = run_pipex("verify", "--json", "--store", str(store), **kwargs)
    report = process.events.items[-1] if process.events.items else {}
    assert process.proc.returncode == 0 and report.get("ok"), f"verify found damage: {process.stdout} {process.stderr}"
    return report


def staging_entries(store: Path) -> list[str]:
    """Names left under the store's staging/."""
    staging = store / "staging"
    return sorted(os.listdir(staging)) if staging.is_dir() else []


def write_project(root: Path, pipeline: str, files: dict[str, str | bytes] | None = None) -> Path:
    """Write ``pipeline.yaml`` (dedented), a ``.pipex.yml`` naming the offline kit images, and ``files``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.yaml").write_text(textwrap.dedent(pipeline))
    (root / ".pipex.yml").write_text(KIT_IMAGES)
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A temp store path; containers labelled with it are removed afterwards, and must have been gone."""
    path = tmp_path / "store"
    yield path
    leftovers = remove_containers(path)
    assert not leftovers, f"containers left behind: {leftovers}"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir every user can enter (for a store and project used by the unprivileged user)."""
    path = Path(tempfile.mkdtemp(prefix="pipex-rel-"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unprivileged() -> str:
    """The non-root user in the docker group (see scripts/provision-docker); skip if it is missing."""
    try:
        info = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        pytest.skip(f"no user {UNPRIVILEGED_USER}; run scripts/provision-docker")
    if os.geteuid() != 0:
        pytest.skip("switching to the unprivileged user needs root")
    return info.pw_name


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to ``user``."""
    info = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, info.pw_uid, info.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), info.pw_uid, info.pw_gid, follow_symlinks=False)
