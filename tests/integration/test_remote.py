"""The remote cache end to end: two "machines" (stores, project paths, identities) sharing a real S3 server.

SeaweedFS on loopback (tests/seaweed.py), the real Docker engine, pipex as a
real process. Machine A holds writer credentials (trusted CI); machine B,
read-only ones (a developer).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seaweed import READER, WRITER, Identity

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, remove_containers

pytestmark = [pytest.mark.docker, pytest.mark.remote]

PIPELINE = f"""\
id: team
steps:
  - {{id: fetch, image: {BUSYBOX}, cmd: "seq 1 3000 > /output/numbers.txt; echo fetched"}}
  - id: count
    image: {BUSYBOX}
    inputs: [{{step: fetch}}]
    cmd: "wc -l < /input/fetch/numbers.txt > /output/count.txt"
  - id: report
    image: {BUSYBOX}
    inputs: [{{step: count}}]
    cmd: "echo total $(cat /input/count/count.txt) > /output/report.txt"
"""


def _machine(root: Path, store: Path, endpoint: str, bucket: str, identity: Identity, extra: str = "") -> Cli:
    cli = Cli(root, store, env=identity.env())
    cli.write(PIPELINE, config=f"remote:\n  url: s3://{bucket}/team\n  endpoint: {endpoint}\n{extra}")
    return cli


@pytest.fixture
def machines(tmp_path: Path, seaweed: Any, bucket: str) -> Iterator[tuple[Cli, Cli]]:
    """A (writer) and B (reader): the same project at two paths, two empty stores."""
    a = _machine(tmp_path / "a" / "project", tmp_path / "a" / "store", seaweed.endpoint, bucket, WRITER)
    b = _machine(tmp_path / "b" / "elsewhere", tmp_path / "b" / "store", seaweed.endpoint, bucket, READER)
    yield a, b
    for machine in (a, b):
        assert remove_containers(machine.store) == [], "the build left containers behind"


def _events(cli: Cli, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = cli.run("build", "--json", *args)
    return done.returncode, cli.events(done.stdout), done.stderr


def _objects(store: Path) -> list[Path]:
    return [p for p in (store / "objects").rglob("*") if p.is_file()]


def test_machine_b_with_read_only_credentials_builds_what_a_pushed_running_nothing(machines: tuple[Cli, Cli]) -> None:
    a, b = machines
    code, events, _ = _events(a)
    assert code == 0
    pushes = [e for e in events if e["event"] == "REMOTE_PUSH"]
    assert sorted(e["step"] for e in pushes) == ["count", "fetch", "report"] and all(e["pushed"] for e in pushes)

    planned = b.run("plan")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.count("(remote run ") == 3, planned.stdout
    assert not list((b.store / "runs").iterdir()), "plan wrote to the store"

    code, events, stderr = _events(b)
    assert code == 0, stderr
    assert not [e for e in events if e["event"] in ("STEP_STARTING", "REMOTE_PUSH", "WARNING")], events
    cached = [e for e in events if e["event"] == "STEP_CACHED"]
    assert [(e["step"], e["source"]) for e in cached] == [("fetch", "remote"), ("count", "remote"), ("report", "remote")]
    assert _objects(b.store) == [], "a lazy pull fetched object bytes"

    verified = b.run("verify")
    assert verified.returncode == 0 and "not fetched" in verified.stdout, verified.stdout
    shown = b.run("cat", "team", "report", "report.txt")
    assert (shown.returncode, shown.stdout) == (0, "total 3000\n"), shown.stderr
    assert len(_objects(b.store)) == 1  # just the one read
    logs = b.run("logs", "team", "fetch")
    assert logs.returncode == 0 and "fetched" in logs.stdout
    exported = b.run("export", "team", "fetch", str(b.root.parent / "out"))
    assert exported.returncode == 0 and (b.root.parent / "out" / "numbers.txt").read_text().count("\n") == 3000
    assert b.run("verify").returncode == 0


def test_a_change_on_a_read_only_machine_runs_there_and_says_once_that_nothing_is_pushed(machines: tuple[Cli, Cli]) -> None:
    a, b = machines
    assert a.run("build").returncode == 0
    pipeline = b.root / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("echo total", "echo sum"))
    done = b.run("build")
    assert done.returncode == 0, done.stderr
    assert "cached  fetch" in done.stderr and "start   report" in done.stderr
    assert done.stdout.count("read-only credentials, pushing nothing") + done.stderr.count("read-only credentials, pushing nothing") == 1
    status = b.run("remote", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["can_write"] is False


def test_a_second_push_of_an_unchanged_workspace_sends_nothing(machines: tuple[Cli, Cli], seaweed: Any, bucket: str) -> None:
    a, _ = machines
    assert a.run("build").returncode == 0
    keys = sorted(o["Key"] for o in seaweed.client(WRITER).list_objects_v2(Bucket=bucket)["Contents"])
    pushed = a.run("push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["pushed"] == 0
    assert sorted(o["Key"] for o in seaweed.client(WRITER).list_objects_v2(Bucket=bucket)["Contents"]) == keys
    assert "team/pipex-remote.json" in keys and sum(k.startswith("team/runs/") for k in keys) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("unreachable", "cannot reach the server"),
        ("bad-credentials", "credentials were refused"),
        ("no-bucket", "does not exist"),
    ],
)
def test_a_remote_fault_is_one_warning_and_the_build_succeeds_unless_required(
    tmp_path: Path, seaweed: Any, bucket: str, fault: str, expected: str
) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}" if fault == "unreachable" else seaweed.endpoint
    identity = Identity("stranger", "nobody", "nothing") if fault == "bad-credentials" else WRITER
    name = "pipex-no-such-bucket" if fault == "no-bucket" else bucket
    cli = _machine(tmp_path / "p", tmp_path / "s", endpoint, name, identity)
    try:
        done = cli.run("build")
        assert done.returncode == 0, done.stderr
        warnings = [line for line in (done.stdout + done.stderr).splitlines() if expected in line]
        assert len(warnings) == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        (cli.root / ".pipex.yml").write_text((cli.root / ".pipex.yml").read_text() + "  required: true\n")
        shutil.rmtree(cli.store)
        refused = cli.run("build")
        assert refused.returncode == 2 and expected in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    finally:
        assert remove_containers(cli.store) == []


def test_a_remote_of_a_newer_format_is_refused_in_one_line_and_the_build_runs_locally(
    machines: tuple[Cli, Cli], seaweed: Any, bucket: str
) -> None:
    _, b = machines
    seaweed.client(WRITER).put_object(Bucket=bucket, Key="team/pipex-remote.json", Body=b'{"format": 7}')
    done = b.run("build")
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("has format 7, newer than this pipex knows") == 1
    assert "start   fetch" in done.stderr


def test_a_no_op_plan_with_a_remote_configured_imports_no_boto3(machines: tuple[Cli, Cli]) -> None:
    a, _ = machines
    assert a.run("build").returncode == 0
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipex", "plan"],
        cwd=a.root, env=a._env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and done.stdout.count("cached") == 3
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert not [m for m in imported if m.split(".")[0] in ("boto3", "botocore")]


def test_remote_status_says_what_the_credentials_may_do(machines: tuple[Cli, Cli], tmp_path: Path) -> None:
    a, b = machines
    writer = a.run("remote", "status")
    assert writer.returncode == 0 and "write      yes" in writer.stdout, writer.stdout + writer.stderr
    reader = b.run("remote", "status")
    assert reader.returncode == 0 and "write      no" in reader.stdout
    gone = b.run("remote", "status", "--remote", "s3://pipex-not-there/x")
    assert gone.returncode == 2 and "does not exist" in gone.stdout
    none = Cli(tmp_path / "plain", tmp_path / "plain-store")
    none.write(textwrap.dedent(PIPELINE))
    refused = none.run("push")
    assert refused.returncode == 2 and "no remote cache configured" in refused.stderr


@pytest.mark.parametrize("damage", ["evicted", "damaged"])
def test_an_evicted_or_damaged_remote_object_makes_its_producer_run_here_and_the_build_succeeds(
    machines: tuple[Cli, Cli], seaweed: Any, bucket: str, damage: str
) -> None:
    a, b = machines
    assert a.run("build").returncode == 0
    client = seaweed.client(WRITER)
    record = json.loads(client.get_object(Bucket=bucket, Key=f"team/runs/{_fingerprint(a, 'fetch')}.json")["Body"].read())
    tree = json.loads(client.get_object(Bucket=bucket, Key=_tree_key(record["meta"]["output_tree"]))["Body"].read())
    oid = next(e["oid"] for e in tree["entries"] if e["path"] == "numbers.txt")
    key = f"team/objects/{oid[:2]}/{oid[2:]}"
    if damage == "evicted":
        client.delete_object(Bucket=bucket, Key=key)
    else:
        client.put_object(Bucket=bucket, Key=key, Body=b"not the numbers\n")
    pipeline = b.root / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("wc -l <", "wc -l  <"))  # count must run: it reads fetch's bytes
    code, events, stderr = _events(b)
    assert code == 0, stderr
    warnings = [e["message"] for e in events if e["event"] == "WARNING" and oid in e["message"]]
    assert warnings == [f"step 'fetch': remote object {oid} missing on the remote; it runs here"], events
    started = {e["step"]: e["reason"] for e in events if e["event"] == "STEP_STARTING"}
    assert started["fetch"] == f"remote object {oid} missing" and "count" in started
    shown = b.run("cat", "team", "report", "report.txt")
    assert shown.stdout == "total 3000\n", shown.stderr
    verified = b.run("verify")
    assert verified.returncode == 0 and "no damage" in verified.stdout, verified.stdout


def _fingerprint(cli: Cli, step: str) -> str:
    return (cli.store / "workspaces" / "team" / "steps" / step).readlink().name


def _tree_key(tree_id: str) -> str:
    return f"team/trees/{tree_id[:2]}/{tree_id[2:]}.json"


def test_remote_verify_and_gc_on_a_real_server(machines: tuple[Cli, Cli], seaweed: Any, bucket: str) -> None:
    a, b = machines
    assert a.run("build").returncode == 0
    verified = a.run("remote", "verify", "--sample", "5", "--json")
    assert verified.returncode == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert (doc["ok"], doc["runs"], doc["sampled"]) == (True, 3, 3)
    refused = b.run("remote", "gc", "--older-than", "0s", "--grace", "0s")
    assert refused.returncode == 2 and "access denied" in refused.stderr and len(refused.stderr.splitlines()) == 1
    dry = json.loads(a.run("remote", "gc", "--older-than", "0s", "--grace", "0s", "--dry-run", "--json").stdout)
    assert dry["runs_deleted"] == 3 and dry["objects_deleted"] == 3
    assert a.run("remote", "gc", "--older-than", "0s", "--grace", "0s").returncode == 0
    keys = [o["Key"] for o in seaweed.client(WRITER).list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["team/pipex-remote.json"]
    done = b.run("build")
    assert done.returncode == 0 and done.stderr.count("start   ") == 3, done.stderr
    client = seaweed.client(WRITER)
    client.put_object(Bucket=bucket, Key="team/runs/" + "0" * 32 + ".json", Body=b"garbage")
    broken = a.run("remote", "verify")
    assert broken.returncode == 1 and "team" not in broken.stdout.split(":")[0] and "runs/" + "0" * 32 in broken.stdout


def test_pull_takes_the_remote_runs_without_building_and_objects_brings_their_bytes(machines: tuple[Cli, Cli]) -> None:
    a, b = machines
    built = a.run("build", "--no-push")
    assert built.returncode == 0
    empty = b.run("pull", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout)["missing"] == ["fetch", "count", "report"]
    pushed = a.run("push", "fetch", "count", "--json")
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["pushed"] == 2, pushed.stdout + pushed.stderr
    pulled = b.run("pull", "count", "--objects", "--json")
    assert pulled.returncode == 0, pulled.stderr
    report = json.loads(pulled.stdout)
    assert (report["pulled"], report["missing"], report["objects"]) == (["fetch", "count"], [], 2)
    assert len(_objects(b.store)) == 2
    shown = b.run("show", "--json")
    assert shown.returncode == 0 and "count" in shown.stdout
    unknown = a.run("push", "nothing-like-this")
    assert unknown.returncode == 2 and "no step of workspace 'team' matches" in unknown.stderr


def test_an_eager_build_fetches_every_object_and_two_readers_at_once_agree(machines: tuple[Cli, Cli]) -> None:
    a, b = machines
    assert a.run("build").returncode == 0
    first, second = b.start("build", "--json"), b.start("build", "--json")
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    for stdout, _ in outs:
        assert not [e for e in b.events(stdout) if e["event"] == "STEP_STARTING"]
    assert sorted(p.name for p in (b.store / "runs").iterdir()) == sorted(
        _fingerprint(a, step) for step in ("fetch", "count", "report")
    )
    eager = b.run("build", "--pull=eager", "--json")
    assert eager.returncode == 0 and b.run("verify").stdout.count("not fetched") == 0


def test_a_server_that_accepts_and_never_answers_costs_seconds_once_not_minutes(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections are accepted by the kernel and never answered
    try:
        cli = _machine(tmp_path / "p", tmp_path / "s", f"http://127.0.0.1:{silent.getsockname()[1]}", "silent-bucket", WRITER)
        started = time.monotonic()
        done = cli.run("plan", timeout=120)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("cannot reach the server") == 1 and "never built" in done.stdout
        assert elapsed < 60, f"a silent remote held the plan {elapsed:.0f} s"
    finally:
        silent.close()
