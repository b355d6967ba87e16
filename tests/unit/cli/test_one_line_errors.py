"""Each bad situation is one ``pipex:`` line and an exit code, never a traceback (issue 10, item 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Seeder

PIPELINE = "id: t\nsteps:\n  - {id: a, image: pipex-test/busybox:1, cmd: 'true'}\n"


def _pipex(*args: str, cwd: Path, env: dict[str, str] | None = None, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("PIPEX_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipex", *args], cwd=cwd, env=full, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60
    )


def _one_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipex: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["build", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["gc", "--dry-run", "extra"], "Got unexpected extra argument"),
        (["build", "-j", "0"], "'-j' / '--concurrency'"),
    ],
)
def test_usage_errors_are_one_pipex_line_not_a_box(tmp_path: Path, args: list[str], needle: str) -> None:
    _one_line(_pipex(*args, cwd=tmp_path), 2, needle)


def test_cat_of_a_missing_object_names_it(seed: Seeder, store: object) -> None:
    seed.run("ws", "s", {"f.txt": "content"})
    (victim,) = [p for p in Path(seed.store.root, "objects").rglob("*") if p.is_file()]
    os.chmod(victim, 0o644)
    victim.unlink()
    _one_line(_pipex("cat", "ws", "s", "f.txt", cwd=seed.project), 2, "is missing", "pipex verify --repair")


def test_a_trace_to_a_bad_path_is_refused_before_building(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    env = {"PIPEX_STORE": str(tmp_path / "store"), "DOCKER_HOST": "tcp://127.0.0.1:1"}
    done = _pipex("build", "--profile", "/nonexistent/dir/trace.json", cwd=tmp_path, env=env)
    _one_line(done, 2, "cannot write the trace to /nonexistent/dir/trace.json")
    assert not (tmp_path / "store" / "runs").exists() or not os.listdir(tmp_path / "store" / "runs")


def test_writing_to_a_full_device_is_one_line(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        done = _pipex("gc", "--json", "--store", str(tmp_path / "store"), cwd=tmp_path, stdout=full)
    _one_line(done, 2, "cannot write the output", "No space left on device")


@pytest.fixture
def not_docker() -> Iterator[str]:
    """An HTTP server on loopback that is not a Docker engine (404 for everything)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_docker_host_pointing_at_something_else_is_one_line_exit_2(tmp_path: Path, not_docker: str) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    env = {"PIPEX_STORE": str(tmp_path / "store"), "DOCKER_HOST": not_docker}
    done = _pipex("build", "-q", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"pipex: cannot connect to the Docker daemon at DOCKER_HOST={not_docker}: "
        "the server there is not a Docker engine (GET /version answered 404)"
    )


def test_following_a_huge_build_log_keeps_memory_bounded(tmp_path: Path) -> None:
    from pipex.ops.detached import _lines

    log = tmp_path / "build.ndjson"
    line = '{"event":"STEP_LOG","step":"s","line":"' + "x" * 80 + '"}\n'
    with open(log, "w") as handle:
        for _ in range(40):
            handle.write(line * 20_000)  # ~80 MB in all
    tracemalloc.start()
    count = sum(1 for _ in _lines(log, lambda: True))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 800_000
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"
