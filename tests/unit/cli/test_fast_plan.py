"""`pipex plan` rendering and the typer-free argument parser; the socket image resolver's reference matching."""

from __future__ import annotations

import io
import json

import pytest

from pipex.executor.image_ids import _dechunk, images_by_ref, normalize_ref, socket_path
from pipex.engine.plan import Plan, StepPlan, StepStatus
from pipex.cli.fast_plan import _parse, format_age, plan_lines, render_plan


def _plan() -> Plan:
    return Plan(
        "demo",
        ("report", "notify"),
        (
            StepPlan("fetch", StepStatus.CACHED, (), "3f2a9c1e" + "0" * 24, "3f2a9c1e" + "0" * 24, 7300.0, "sha256:x", None, "tree"),
            StepPlan("stats", StepStatus.RUN, ("cmd changed", "file scripts/a.py changed"), "f" * 32),
            StepPlan("report", StepStatus.PENDING, ("input 'stats' will run",)),
            StepPlan("notify", StepStatus.SKIPPED, ("condition false: env.CI",)),
        ),
    )


def test_plan_lines_say_status_step_and_why() -> None:
    assert plan_lines(_plan()) == [
        "cached   fetch   (run 3f2a9c1e, 2h ago)",
        "run      stats   cmd changed; file scripts/a.py changed",
        "pending  report  (after stats)",
        "skipped  notify  condition false: env.CI",
    ]


def test_warnings_come_first() -> None:
    plan = Plan("demo", (), (), ("cannot reach Docker",))
    assert plan_lines(plan) == ["warning: cannot reach Docker"]


def test_json_rendering_is_one_document() -> None:
    out = io.StringIO()
    render_plan(_plan(), json_output=True, out=out)
    data = json.loads(out.getvalue())
    assert data["workspace"] == "demo"
    assert [s["status"] for s in data["steps"]] == ["cached", "run", "pending", "skipped"]
    assert data["steps"][1]["reasons"] == ["cmd changed", "file scripts/a.py changed"]


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (61, "1m"), (7300, "2h"), (200000, "2d"), (None, "?")])
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


def test_parse_plan_arguments() -> None:
    opts = _parse(["report*", "-t", "stats", "--target=x", "-f", "p.yaml", "-w", "ws", "--env-file", "a.env", "--offline", "--json"])
    assert opts is not None
    assert opts["targets"] == ["report*", "stats", "x"]
    assert (opts["file"], opts["workspace"], opts["env_files"], opts["offline"], opts["json_output"]) == (
        "p.yaml", "ws", ["a.env"], True, True,
    )


@pytest.mark.parametrize(
    ("argv", "force"),
    [
        (["--force"], True),
        (["--force", "--json"], True),
        (["--force", "a,b"], "a,b"),
        (["--force=a"], "a"),
        (["--force=*"], True),
        ([], False),
    ],
)
def test_parse_force(argv: list[str], force: object) -> None:
    opts = _parse(argv)
    assert opts is not None and opts["force"] == force


@pytest.mark.parametrize("argv", [["--help"], ["--bogus"], ["-f"]])
def test_parse_leaves_help_and_errors_to_typer(argv: list[str]) -> None:
    assert _parse(argv) is None


# -- image references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("python", ("docker.io/library/python", "latest", None)),
        ("python:3.12-slim", ("docker.io/library/python", "3.12-slim", None)),
        ("library/python:3", ("docker.io/library/python", "3", None)),
        ("docker.io/python:3", ("docker.io/library/python", "3", None)),
        ("pipex-test/busybox:1", ("docker.io/pipex-test/busybox", "1", None)),
        ("localhost:5000/app", ("localhost:5000/app", "latest", None)),
        ("ghcr.io/o/app@sha256:ab", ("ghcr.io/o/app", None, "sha256:ab")),
        ("python:3@sha256:ab", ("docker.io/library/python", "3", "sha256:ab")),
    ],
)
def test_normalize_ref(ref: str, expected: tuple) -> None:
    assert normalize_ref(ref) == expected


def test_images_are_found_by_tag_digest_and_id() -> None:
    index = images_by_ref(
        [
            {"Id": "sha256:1", "RepoTags": ["python:3.12-slim"], "RepoDigests": ["python@sha256:d1"]},
            {"Id": "sha256:2", "RepoTags": ["<none>:<none>"], "RepoDigests": None},
            {"Id": "sha256:3", "RepoTags": ["docker.io/library/alpine:latest"]},
        ]
    )
    assert index["docker.io/library/python:3.12-slim"] == "sha256:1"
    assert index["docker.io/library/python@sha256:d1"] == "sha256:1"
    assert index["docker.io/library/alpine:latest"] == "sha256:3"
    assert index["sha256:2"] == "sha256:2"


def test_socket_path_follows_docker_host_and_contexts(tmp_path) -> None:
    assert socket_path({"DOCKER_HOST": "unix:///run/podman.sock"}) == "/run/podman.sock"
    assert socket_path({"DOCKER_HOST": "tcp://10.0.0.1:2375"}) is None
    assert socket_path({"DOCKER_CONTEXT": "remote"}) is None
    (tmp_path / "config.json").write_text('{"currentContext": "colima"}')
    assert socket_path({"DOCKER_CONFIG": str(tmp_path)}) is None
    (tmp_path / "config.json").write_text("{}")
    assert socket_path({"DOCKER_CONFIG": str(tmp_path)}) == "/var/run/docker.sock"


def test_dechunk() -> None:
    assert _dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n") == b"abcde"


# -- the command, end to end (no Docker: --offline and a seeded store) ----------------------

PIPELINE = """\
id: demo
steps:
  - id: fetch
    image: example/tool:1
    cmd: echo hi > /output/a
  - id: stats
    image: example/tool:1
    inputs: [{step: fetch}]
    sources: [{host: scripts, container: /src}]
    cmd: cat /input/fetch/a /src/a.py > /output/b
  - id: notify
    image: example/tool:1
    if: env.CI
    inputs: [{step: stats}]
    cmd: echo done
"""


def _run_cli(project, store_root, tmp_path, *args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PIPEX_STORE": str(store_root), "PIPEX_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "pipex", "plan", *args], cwd=project, env=env, capture_output=True, text=True
    )


def test_plan_command_end_to_end(tmp_path) -> None:
    from plan_helpers import build_all, open_store

    from pipex import api

    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "a.py").write_text("print(1)\n")
    (project / "pipeline.yaml").write_text(PIPELINE)
    store = open_store(tmp_path / "store")
    cold = _run_cli(project, store.root, tmp_path, "--offline")
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.splitlines()[0].startswith("run      fetch   image example/tool:1 not resolved: --offline")

    pipeline = api.load(project).pipeline
    build_all(pipeline, store, workspace="demo", condition_env={}, image_resolver=lambda refs: {r: "sha256:" + "5" * 64 for r in refs})
    warm = _run_cli(project, store.root, tmp_path, "--offline")
    assert warm.returncode == 0, warm.stderr
    lines = warm.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["cached", "cached", "skipped"]
    assert lines[2] == "skipped  notify  condition false: env.CI"

    (project / "scripts" / "a.py").write_text("print(2)\n")
    edited = _run_cli(project, store.root, tmp_path, "--offline", "--json")
    data = json.loads(edited.stdout)
    assert [(s["step"], s["status"], s["reasons"]) for s in data["steps"]][1] == ("stats", "run", ["file scripts/a.py changed"])

    unknown = _run_cli(project, store.root, tmp_path, "--offline", "stat")
    assert unknown.returncode == 2
    assert "unknown target 'stat'" in unknown.stderr and "'stats'" in unknown.stderr


def test_graph_command_styles_by_status(tmp_path) -> None:
    import os
    import subprocess
    import sys

    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "a.py").write_text("print(1)\n")
    (project / "pipeline.yaml").write_text(PIPELINE)
    env = {**os.environ, "PIPEX_STORE": str(tmp_path / "store"), "PIPEX_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipex", "graph", "--format", "dot", "--offline"],
        cwd=project, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert '"fetch" -> "stats";' in done.stdout
    assert 'tooltip="skipped"' in done.stdout and 'tooltip="run"' in done.stdout


@pytest.mark.parametrize("chunked", [False, True])
def test_socket_resolver_reads_one_images_listing(tmp_path, monkeypatch, chunked: bool) -> None:
    import socket
    import threading

    from pipex.executor.image_ids import default_image_resolver

    body = json.dumps([{"Id": "sha256:abc", "RepoTags": ["python:3.12-slim"], "RepoDigests": []}]).encode()
    if chunked:
        payload = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        # Content-Length and no close: the reader must stop by itself.
        payload = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    requests: list[bytes] = []
    release = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        requests.append(conn.recv(4096))
        conn.sendall(payload)
        if chunked:
            conn.close()
        else:
            release.wait(5)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    try:
        assert default_image_resolver(["python:3.12-slim", "alpine"]) == {"python:3.12-slim": "sha256:abc", "alpine": None}
    finally:
        release.set()
        thread.join(5)
        server.close()
    assert requests[0].startswith(b"GET /images/json HTTP/1.1\r\n")


def test_socket_resolver_unreachable_daemon_is_a_pipex_error(tmp_path, monkeypatch) -> None:
    from pipex.errors import DockerUnavailableError
    from pipex.executor.image_ids import default_image_resolver

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(DockerUnavailableError, match="cannot reach Docker"):
        default_image_resolver(["python"])
