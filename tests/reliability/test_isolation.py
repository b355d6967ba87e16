"""Isolation: no network unless allowed, no host env unless declared, read-only inputs, no-new-privileges, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import BUSYBOX, PYTHON, run_pipex, verify_store, write_project

pytestmark = pytest.mark.docker

# The mirror host is read from the image's apt sources inside the step, so no host is named here.
PROBE = r"""
import glob, re, socket
text = "".join(open(p).read() for p in glob.glob("/etc/apt/sources.list") + glob.glob("/etc/apt/sources.list.d/*"))
host = re.search(r"https?://([^/\s:]+)", text).group(1)
try:
    socket.create_connection((host, 80), timeout=5).close()
    result = "connected"
except OSError as error:
    result = f"refused: {type(error).__name__}"
open("/output/result", "w").write(result)
"""


def _output(store: Path, workspace: str, step: str, name: str) -> str:
    """Text of ``name`` in the current output of ``step``."""
    from pipex.store import Store

    opened = Store.open(store)
    tree = opened.read_run(opened.get_ref(workspace, step)).meta.output_tree
    return (opened.checkout(tree) / name).read_text()


def test_step_without_allow_network_cannot_reach_the_package_mirror(tmp_path: Path, store: Path) -> None:
    pipeline = f"""\
    id: net
    steps:
      - {{id: isolated, image: {PYTHON}, sources: [{{host: probe, container: /probe}}], cmd: [python3, /probe/probe.py]}}
      - {{id: setup_only, image: {PYTHON}, sources: [{{host: probe, container: /probe}}], setup: {{cmd: "true", allowNetwork: true}}, cmd: [python3, /probe/probe.py]}}
      - {{id: allowed, image: {PYTHON}, allowNetwork: true, sources: [{{host: probe, container: /probe}}], cmd: [python3, /probe/probe.py]}}
    """
    root = write_project(tmp_path / "project", pipeline, {"probe/probe.py": PROBE})
    process = run_pipex("build", "-f", str(root), "--store", str(store), "--json")
    assert process.proc.returncode == 0, process.stderr + process.stdout
    assert _output(store, "net", "isolated", "result").startswith("refused")
    # A networked setup is disconnected before cmd runs.
    assert _output(store, "net", "setup_only", "result").startswith("refused")
    # The control: the same probe with network reaches the mirror, so "refused" above means isolation.
    assert _output(store, "net", "allowed", "result") == "connected"


def test_host_env_is_invisible_in_setup_and_networked_phases_unless_declared(
    tmp_path: Path, store: Path
) -> None:
    pipeline = f"""\
    id: envs
    steps:
      - id: e
        image: {BUSYBOX}
        allowNetwork: true
        env: {{DECLARED: yes-declared}}
        envFile: step.env
        setup: {{cmd: "env > /cache/setup.env", caches: [{{name: c, path: /cache}}], allowNetwork: true}}
        cmd: cp /cache/setup.env /output/setup.env; env > /output/run.env
    """
    root = write_project(tmp_path / "project", pipeline, {"step.env": "FROM_FILE=file-value\n"})
    process = run_pipex(
        "build", "-f", str(root), "--store", str(store), env={"PIPEX_TEST_HOST_ONLY": "host-leak", "AWS_SECRET_ACCESS_KEY": "aws-leak"}
    )
    assert process.proc.returncode == 0, process.stderr
    for name in ("setup.env", "run.env"):
        text = _output(store, "envs", "e", name)
        assert "host-leak" not in text and "aws-leak" not in text, name
        assert "PIPEX_STORE" not in text and "PIPEX_CACHE_DIR" not in text, name
    run_env = _output(store, "envs", "e", "run.env")
    assert "DECLARED=yes-declared" in run_env and "FROM_FILE=file-value" in run_env


def test_inputs_and_mounts_are_read_only(tmp_path: Path, store: Path) -> None:
    pipeline = f"""\
    id: ro
    steps:
      - {{id: a, image: {BUSYBOX}, cmd: echo original > /output/file}}
      - id: b
        image: {BUSYBOX}
        inputs: [{{step: a}}]
        mounts: [{{host: conf, container: /conf}}]
        cmd: >-
          for target in /input/a/file /input/a/new /conf/c.txt /conf/new; do
            if echo changed > $target 2>/dev/null; then echo "wrote $target"; else echo "refused $target"; fi;
          done > /output/report;
          rm -f /input/a/file 2>/dev/null && echo "removed" >> /output/report; true
    """
    root = write_project(tmp_path / "project", pipeline, {"conf/c.txt": "conf\n"})
    process = run_pipex("build", "-f", str(root), "--store", str(store))
    assert process.proc.returncode == 0, process.stderr
    report = _output(store, "ro", "b", "report").splitlines()
    assert report == [f"refused {t}" for t in ("/input/a/file", "/input/a/new", "/conf/c.txt", "/conf/new")]
    assert _output(store, "ro", "a", "file") == "original\n"
    assert (root / "conf" / "c.txt").read_text() == "conf\n" and not (root / "conf" / "new").exists()
    verify_store(store)


def test_no_new_privileges_is_set_in_direct_and_setup_modes(tmp_path: Path, store: Path) -> None:
    pipeline = f"""\
    id: nnp
    steps:
      - {{id: direct, image: {BUSYBOX}, cmd: grep NoNewPrivs /proc/self/status > /output/status}}
      - {{id: keeper, image: {BUSYBOX}, setup: {{cmd: "true"}}, cmd: grep NoNewPrivs /proc/self/status > /output/status}}
      - {{id: as_user, image: {BUSYBOX}, user: "1000:1000", cmd: grep NoNewPrivs /proc/self/status > /output/status}}
    """
    root = write_project(tmp_path / "project", pipeline)
    process = run_pipex("build", "-f", str(root), "--store", str(store))
    assert process.proc.returncode == 0, process.stderr
    for step in ("direct", "keeper", "as_user"):
        assert _output(store, "nnp", step, "status").split() == ["NoNewPrivs:", "1"], step


SECRET_ENV = "s3cr3t-from-env-Zq9"
SECRET_FILE = "s3cr3t-from-file-Kx7"


def test_secrets_are_read_only_files_and_never_recorded_anywhere(tmp_path: Path, store: Path) -> None:
    pipeline = f"""\
    id: secrets
    steps:
      - id: s
        image: {BUSYBOX}
        secrets: [{{name: token, env: PIPEX_TEST_TOKEN}}, {{name: key, file: keys/key.txt}}]
        setup: {{cmd: "test -f /run/secrets/token && echo setup-sees-secret"}}
        cmd: >-
          md5sum /run/secrets/token /run/secrets/key | cut -c1-32 > /output/md5 &&
          (echo x > /run/secrets/token && echo writable || echo read-only) > /output/writable &&
          env > /output/env && echo done
    """
    root = write_project(tmp_path / "project", pipeline, {"keys/key.txt": SECRET_FILE})
    env = {"PIPEX_TEST_TOKEN": SECRET_ENV}
    first = run_pipex("build", "-f", str(root), "--store", str(store), "--json", "--verbose", env=env)
    assert first.proc.returncode == 0, first.stderr
    import hashlib

    assert _output(store, "secrets", "s", "md5").split() == [
        hashlib.md5(SECRET_ENV.encode()).hexdigest(),
        hashlib.md5(SECRET_FILE.encode()).hexdigest(),
    ]
    assert _output(store, "secrets", "s", "writable").strip() == "read-only"
    assert SECRET_ENV not in _output(store, "secrets", "s", "env")
    logs = [e for e in first.events.of("STEP_LOG")]
    assert any("setup-sees-secret" in e.get("line", "") for e in logs) or any("done" in e.get("line", "") for e in logs)
    # Not in events, stderr, or any file of the store (meta.json, logs, trees, fingerprints, refs).
    for secret in (SECRET_ENV, SECRET_FILE):
        assert secret not in first.stdout and secret not in first.stderr
        for path in store.rglob("*"):
            if path.is_file() and not path.is_symlink() and "objects" not in path.parts:
                assert secret.encode() not in path.read_bytes(), path
    meta = json.loads(next((store / "runs").glob("*/meta.json")).read_text())
    assert SECRET_ENV not in json.dumps(meta) and SECRET_FILE not in json.dumps(meta)
    # A new secret value is not a new fingerprint: the step stays cached.
    (root / "keys" / "key.txt").write_text("rotated")
    again = run_pipex("build", "-f", str(root), "--store", str(store), "--json", env={"PIPEX_TEST_TOKEN": "rotated"})
    assert again.proc.returncode == 0, again.stderr
    assert again.events.steps("STEP_CACHED") == {"s"}
    # The temp files holding the values are gone after the step.
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("pipex-secrets-*")]
    for directory in leftovers:
        for path in directory.rglob("*"):
            assert SECRET_ENV.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("caller", ["root", "unprivileged"])
def test_step_with_its_own_user_can_write_its_output(request: pytest.FixtureRequest, tmp_path: Path, caller: str) -> None:
    """Found by the no-new-privileges test: the output dir was 0755 and owned by pipex's user."""
    from .conftest import chown_tree, remove_containers

    user = request.getfixturevalue("unprivileged") if caller == "unprivileged" else None
    base = request.getfixturevalue("shared_tmp") if user else tmp_path
    pipeline = f"""\
    id: owned
    steps:
      - {{id: mine, image: {BUSYBOX}, user: "1000:1000", cmd: mkdir /output/d && id -u > /output/d/uid}}
      - {{id: next, image: {BUSYBOX}, inputs: [{{step: mine}}], cmd: cat /input/mine/d/uid > /output/uid}}
    """
    root = write_project(base / "project", pipeline)
    store = base / "store"
    if user:
        chown_tree(base, user)
    try:
        process = run_pipex("build", "-f", str(root), "--store", str(store), user=user)
        assert process.proc.returncode == 0, process.stderr + process.stdout
        assert _output(store, "owned", "next", "uid") == "1000\n"
        assert not list((store / "staging").iterdir())
        verify_store(store, user=user)
    finally:
        remove_containers(store)
