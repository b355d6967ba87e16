"""Distributed builds end to end: a real Dask cluster on loopback, a real S3 server, the real Docker engine.

The client (pipex as a real process) plans, ships step jobs to the cluster
and adopts what the workers push; each worker has its own store, so every
input and output travels through the remote cache, as between machines.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dask_cluster import DaskCluster, start_local_cluster, worker_stores
from tests.seaweed import WRITER

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, remove_containers

pytestmark = [pytest.mark.docker, pytest.mark.remote, pytest.mark.cluster]

PIPELINE = f"""\
id: wide
steps:
  - {{id: fetch, image: {BUSYBOX}, cmd: "seq 1 3000 > /output/numbers.txt; echo fetched $(hostname)"}}
  - id: count
    image: {BUSYBOX}
    inputs: [{{step: fetch}}]
    cmd: "wc -l < /input/fetch/numbers.txt > /output/count.txt"
  - id: report
    image: {BUSYBOX}
    inputs: [{{step: count}}]
    mounts: [{{host: data, container: /data}}]
    cmd: "echo total $(cat /input/count/count.txt) $(cat /data/note.txt) > /output/report.txt"
"""


def _config(endpoint: str, bucket: str, address: str) -> str:
    return f"remote: {{url: 's3://{bucket}/team', endpoint: '{endpoint}'}}\nexecutor: {{kind: dask, scheduler: '{address}'}}\n"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """2 workers × 4 docker slots, each with its own store and writer credentials."""
    started = start_local_cluster(tmp_path / "cluster", WRITER.env())
    yield started
    started.stop()
    for store in worker_stores(started.directory):
        remove_containers(store)


@pytest.fixture
def client(tmp_path: Path, seaweed: Any, bucket: str, cluster: DaskCluster) -> Iterator[Cli]:
    """The project on the machine that types ``pipex build``."""
    cli = Cli(tmp_path / "project", tmp_path / "store", env=WRITER.env())
    cli.write(PIPELINE, files={"data/note.txt": "from-the-client\n"}, config=_config(seaweed.endpoint, bucket, cluster.address))
    yield cli
    assert remove_containers(cli.store) == [], "the client started containers of its own"


def _build(cli: Cli, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = cli.run("build", "--json", *args)
    return done.returncode, cli.events(done.stdout), done.stderr


def _build_containers(build_label: bool = True) -> list[dict[str, Any]]:
    import docker

    api = docker.APIClient(version="auto")
    try:
        return api.containers(all=True, filters={"label": "pipex.build"})
    finally:
        api.close()


def test_a_dask_build_runs_every_step_on_the_workers_and_the_client_adopts_their_runs(
    client: Cli, cluster: DaskCluster, tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    code, events, stderr = _build(client)
    assert code == 0, stderr
    finished = {e["step"]: e for e in events if e["event"] == "STEP_FINISHED"}
    assert sorted(finished) == ["count", "fetch", "report"]
    assert all(e["worker"] for e in finished.values()), finished
    cat = client.run("cat", "wide", "report", "report.txt")
    assert cat.stdout == "total 3000 from-the-client\n", cat.stderr  # the mounted project file reached the worker
    inspect = client.run("inspect", "wide", "fetch")
    assert "worker: " in inspect.stdout
    show = client.run("show", "wide")
    assert "WORKER" in show.stdout and finished["fetch"]["worker"] in show.stdout, show.stdout
    # The workers' stores, not the client's, ran the steps: the client holds records and trees, no object bytes
    # beyond what cat fetched.
    assert len(worker_stores(cluster.directory)) >= 1
    # Unchanged: a second build runs nothing, on the cluster or here.
    code, events, stderr = _build(client)
    assert code == 0 and not [e for e in events if e["event"] == "STEP_STARTING"], stderr
    # A machine without the cluster builds from the remote: 0 steps run.
    other = Cli(tmp_path / "other", tmp_path / "other-store", env=WRITER.env())
    other.write(PIPELINE, files={"data/note.txt": "from-the-client\n"}, config=f"remote: {{url: 's3://{bucket}/team', endpoint: '{seaweed.endpoint}'}}\n")
    code, events, stderr = _build(other)
    assert code == 0, stderr
    assert sorted(e["step"] for e in events if e["event"] == "STEP_CACHED" and e["source"] == "remote") == ["count", "fetch", "report"]


def test_a_step_that_fails_on_a_worker_fails_the_build_and_its_logs_are_here(client: Cli, seaweed: Any, bucket: str, cluster: DaskCluster) -> None:
    client.write(
        f"""\
        id: wide
        steps:
          - {{id: broken, image: {BUSYBOX}, cmd: "echo looking; echo no such table >&2; exit 3"}}
        """,
        config=_config(seaweed.endpoint, bucket, cluster.address),
    )
    code, events, _ = _build(client)
    assert code == 1
    failed = next(e for e in events if e["event"] == "STEP_FAILED")
    assert failed["exitCode"] == 3 and failed["worker"]
    logs = client.run("logs", "wide", "broken")
    assert "looking" in logs.stdout and "no such table" in logs.stderr


def test_verbose_streams_a_remote_steps_lines_while_it_runs(client: Cli, seaweed: Any, bucket: str, cluster: DaskCluster) -> None:
    client.write(
        f"""\
        id: wide
        steps:
          - {{id: slow, image: {BUSYBOX}, cmd: "echo first-line; sleep 10; echo last-line > /output/x"}}
        """,
        config=_config(seaweed.endpoint, bucket, cluster.address),
    )
    process = client.start("build", "-v")
    deadline = time.monotonic() + 60
    while not list((client.store / "staging").glob("run-slow-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    follower = client.start("logs", "--follow", "wide", "slow")
    assert follower.stdout is not None
    first = follower.stdout.readline()  # `logs --follow` prints the line the worker streamed, while the step runs
    running = process.poll() is None
    out, err = process.communicate(timeout=120)
    rest, _ = follower.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "[slow] first-line" in out + err
    assert first == "first-line\n" and running, f"the line was not visible while the step ran: {first!r}"
    assert follower.returncode == 0


def test_non_local_executor_without_a_remote_is_refused_in_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "p", tmp_path / "s")
    cli.write(PIPELINE, files={"data/note.txt": "x\n"}, config="executor: {kind: dask, scheduler: 'tcp://127.0.0.1:1'}\n")
    done = cli.run("build")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs a remote cache" in done.stderr


def test_plain_tcp_to_a_scheduler_off_loopback_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "p", tmp_path / "s")
    cli.write(PIPELINE, files={"data/note.txt": "x\n"}, config="remote: s3://bucket-x/p\n")
    done = cli.run("build", "--scheduler", "tcp://10.1.2.3:8786")
    assert done.returncode == 2 and "refusing plain tcp" in done.stderr and "Traceback" not in done.stderr


def test_kill_9_of_the_worker_running_a_step_the_build_succeeds_with_one_run_and_no_container_left(
    client: Cli, seaweed: Any, bucket: str, cluster: DaskCluster
) -> None:
    client.write(
        f"""\
        id: wide
        steps:
          - {{id: long, image: {BUSYBOX}, cmd: "sleep 5; echo survived > /output/x"}}
        """,
        config=_config(seaweed.endpoint, bucket, cluster.address),
    )
    process = client.start("build", "--json")
    owner = None
    deadline = time.monotonic() + 60
    while owner is None and time.monotonic() < deadline:
        for container in _build_containers():
            labels = container.get("Labels") or {}
            if labels.get("pipex.step") == "long" and container.get("State") == "running":
                owner = labels["pipex.owner"]
        time.sleep(0.2)
    assert owner is not None, "the step never started on a worker"
    os.kill(int(owner.split(".")[0]), signal.SIGKILL)  # the worker process that started the container
    killed_at = time.monotonic()
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, out + err
    events = client.events(out)
    assert [e["step"] for e in events if e["event"] == "STEP_FINISHED"] == ["long"]
    assert client.run("cat", "wide", "long", "x").stdout == "survived\n"
    assert len([p for p in (client.store / "runs").iterdir()]) == 1
    while time.monotonic() - killed_at < 30 and [c for c in _build_containers() if (c.get("Labels") or {}).get("pipex.owner") == owner]:
        time.sleep(0.5)
    assert not [c for c in _build_containers() if (c.get("Labels") or {}).get("pipex.owner") == owner], "the killed worker's container is left"


def test_ctrl_c_of_a_distributed_build_removes_every_remote_container_and_exits_130(
    client: Cli, seaweed: Any, bucket: str, cluster: DaskCluster
) -> None:
    steps = "".join(f'  - {{id: s{i}, image: {BUSYBOX}, cmd: "sleep 60; echo {i} > /output/x"}}\n' for i in range(4))
    client.write(f"id: wide\nsteps:\n{steps}", config=_config(seaweed.endpoint, bucket, cluster.address))
    process = client.start("build")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len([c for c in _build_containers() if c.get("State") == "running"]) < 4:
        time.sleep(0.2)
    assert len(_build_containers()) >= 4, "the steps never started"
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    process.communicate(timeout=60)
    assert process.returncode == 130
    while _build_containers() and time.monotonic() - sent < 15:
        time.sleep(0.3)
    assert _build_containers() == [], f"containers left {time.monotonic() - sent:.1f}s after Ctrl-C"


def test_a_worker_whose_image_differs_from_the_plan_fails_the_step_and_records_nothing(
    client: Cli, seaweed: Any, bucket: str, tmp_path: Path
) -> None:
    # The job as the client would ship it, with the image id of another image than the worker's.
    code, events, stderr = _build(client, "--executor", "local", "fetch")
    assert code == 0, stderr
    fingerprint = next(e for e in events if e["event"] == "STEP_STARTING")["fingerprint"]
    from pipex import __version__

    doc = json.loads((client.store / "runs" / fingerprint / "meta.json").read_text())
    from pipex.spec.model import step_to_dict
    from pipex.spec.load import load_pipeline

    step = load_pipeline(client.root / "pipeline.yaml").step("fetch")
    job = {
        "format": 1, "buildId": "b1", "workspace": "wide", "forced": True, "pipexVersion": __version__,
        "remote": {"url": f"s3://{bucket}/team", "endpoint": seaweed.endpoint, "region": None}, "hostTrees": {},
        "job": {
            "format": 1, "step": step_to_dict(step), "fingerprint": "f" * 32, "document": doc["fingerprint_doc"],
            "imageId": "sha256:" + "0" * 64, "inputTrees": {}, "reason": "test",
        },
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    worker = Cli(client.root, tmp_path / "worker-store", env=WRITER.env())
    done = worker.run("worker", "run-job", str(path))
    assert done.returncode == 1
    answer = json.loads(done.stdout)
    assert answer["status"] == "failed" and "pin images by digest" in answer["reason"]
    s3 = seaweed.client(WRITER)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"team/runs/{'f' * 32}")


def test_a_worker_with_another_pipex_version_is_refused_at_start(client: Cli, tmp_path: Path, seaweed: Any, bucket: str) -> None:
    preload = tmp_path / "other_version.py"
    preload.write_text("import pipex\npipex.__version__ = '0.0.1-other'\n")  # this worker process runs another pipex
    other = start_local_cluster(tmp_path / "other-cluster", WRITER.env(), workers=1, slots=1, preload=[str(preload)])
    try:
        client.write(PIPELINE, files={"data/note.txt": "x\n"}, config=_config(seaweed.endpoint, bucket, other.address))
        done = client.run("build")
    finally:
        other.stop()
    assert done.returncode == 2
    assert "0.0.1-other" in done.stderr and "same pipex" in done.stderr and "Traceback" not in done.stderr


def test_the_scheduler_going_away_mid_build_is_one_line_exit_1_and_finished_steps_are_kept(
    client: Cli, seaweed: Any, bucket: str, tmp_path: Path
) -> None:
    doomed = start_local_cluster(tmp_path / "doomed", WRITER.env(), workers=1, slots=2)
    try:
        client.write(
            f"""\
            id: wide
            steps:
              - {{id: quick, image: {BUSYBOX}, cmd: "echo ok > /output/x"}}
              - {{id: long, image: {BUSYBOX}, inputs: [{{step: quick}}], cmd: "sleep 30; echo > /output/x"}}
            """,
            config=_config(seaweed.endpoint, bucket, doomed.address),
        )
        process = client.start("build")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [
            c for c in _build_containers() if (c.get("Labels") or {}).get("pipex.step") == "long"
        ]:
            time.sleep(0.2)
        doomed.kill_scheduler()
        out, err = process.communicate(timeout=120)
    finally:
        doomed.stop()
        for store in worker_stores(doomed.directory):
            remove_containers(store)
    assert process.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("pipex:")]
    assert len(lines) == 1 and "went away" in lines[0], err
    assert "Traceback" not in err
    show = client.run("show", "wide")
    assert "quick   ok" in show.stdout or " ok " in show.stdout.split("quick")[1].splitlines()[0], show.stdout


def test_dask_over_tls_with_the_cli_processes_and_a_plain_or_untrusted_client_is_refused(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    from tests.dask_cluster import start_cli_cluster
    from tests.tls_certs import make_pki

    trusted = make_pki(tmp_path / "pki", "team")
    stranger = make_pki(tmp_path / "pki", "stranger")
    node = {"ca": trusted["ca"], "cert": trusted["node_cert"], "key": trusted["node_key"]}
    cluster = start_cli_cluster(tmp_path / "tls-cluster", WRITER.env(), slots=2, tls=node)
    try:
        assert cluster.address.startswith("tls://127.0.0.1:")
        cli = Cli(tmp_path / "project", tmp_path / "store", env=WRITER.env())

        def config(ca: Path, cert: Path, key: Path) -> str:
            return (
                f"remote: {{url: 's3://{bucket}/team', endpoint: '{seaweed.endpoint}'}}\n"
                f"executor: {{kind: dask, scheduler: '{cluster.address}', tls: {{ca: '{ca}', cert: '{cert}', key: '{key}'}}}}\n"
            )

        cli.write(PIPELINE, files={"data/note.txt": "over-tls\n"}, config=config(trusted["ca"], trusted["client_cert"], trusted["client_key"]))
        code, events, stderr = _build(cli)
        assert code == 0, stderr
        assert {e["worker"].split("/")[-1] for e in events if e["event"] == "STEP_FINISHED"} == {"cli-0"}
        assert cli.run("cat", "wide", "report", "report.txt").stdout == "total 3000 over-tls\n"

        plain = cli.run("build", "--force", "--scheduler", cluster.address.replace("tls://", "tcp://"))
        assert plain.returncode == 2 and "cannot reach the Dask scheduler" in plain.stderr, plain.stderr
        assert "Traceback" not in plain.stderr

        cli.write(PIPELINE, files={"data/note.txt": "over-tls\n"}, config=config(stranger["ca"], stranger["client_cert"], stranger["client_key"]))
        untrusted = cli.run("build", "--force")
        assert untrusted.returncode == 2 and "cannot reach the Dask scheduler" in untrusted.stderr, untrusted.stderr
    finally:
        cluster.stop()
        for store in worker_stores(cluster.directory):
            remove_containers(store)


def test_worker_check_says_what_a_worker_has_and_fails_on_what_blocks_step_jobs(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    cli = Cli(tmp_path, tmp_path / "store", env={**WRITER.env(), "PIPEX_WORKER_STORE": str(tmp_path / "worker-store")})
    url = f"s3://{bucket}/team"
    good = cli.run("worker", "check", "--remote", url, "--endpoint", seaweed.endpoint, "--image", BUSYBOX, "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    checks = json.loads(good.stdout)["checks"]
    assert set(checks) == {"pipex", "docker", "images", "store", "remote"} and all(c["ok"] for c in checks.values())
    bad = cli.run("worker", "check", "--remote", url, "--endpoint", "http://127.0.0.1:1", "--image", "pipex-test/absent:0")
    assert bad.returncode == 1
    assert "FAIL images: missing: pipex-test/absent:0" in bad.stdout and "FAIL remote:" in bad.stdout, bad.stdout
    assert "ok   docker:" in bad.stdout
