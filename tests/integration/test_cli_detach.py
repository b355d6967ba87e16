"""build --detach, attach, cancel and logs --follow as real processes on the real engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, containers, remove_containers

pytestmark = pytest.mark.docker


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A temp project and store; any detached build still running is cancelled, containers removed."""
    project = Cli(tmp_path / "project", tmp_path / "store")
    yield project
    status = project.store / "workspaces"
    for ws in status.iterdir() if status.is_dir() else ():
        doc = ws / "build.json"
        if doc.exists() and json.loads(doc.read_text()).get("state") != "finished":
            project.run("cancel", ws.name, timeout=120)
    assert remove_containers(project.store) == [], "the test left containers behind"


SLOW = f"""\
id: slow
steps:
  - {{id: quick, image: {BUSYBOX}, cmd: echo q > /output/q}}
  - {{id: sleepy, image: {BUSYBOX}, inputs: [{{step: quick}}], cmd: "for i in 1 2 3; do echo tick $i; sleep 1; done; echo s > /output/s"}}
"""

FOREVER = SLOW.replace("for i in 1 2 3; do echo tick $i; sleep 1; done; echo s > /output/s", "sleep 300")


def _status(cli: Cli, ws: str) -> dict:
    return json.loads((cli.store / "workspaces" / ws / "build.json").read_text())


def test_detach_returns_at_once_and_attach_follows_to_the_end_with_its_exit_code(cli: Cli) -> None:
    cli.write(SLOW)
    started = time.monotonic()
    detached = cli.run("build", "--detach")
    assert detached.returncode == 0, detached.stderr
    assert time.monotonic() - started < 15
    assert detached.stdout.splitlines() == [
        detached.stdout.splitlines()[0],
        "  follow it: pipex attach slow",
        "  stop it:   pipex cancel slow",
    ]
    assert detached.stdout.startswith("building workspace 'slow' in the background (pid ")
    attached = cli.run("attach", "slow", "--json")
    assert attached.returncode == 0, attached.stderr
    events = cli.events(attached.stdout)
    assert events[0]["event"] == "PIPELINE_START" and events[-1]["event"] == "PIPELINE_FINISHED"
    assert [e["step"] for e in events if e["event"] == "STEP_FINISHED"] == ["quick", "sleepy"]
    late = cli.run("attach", "slow", "--json")  # after the end: the same replay, the same code
    assert (late.returncode, cli.events(late.stdout)) == (0, events)
    human = cli.run("attach", "slow")
    assert human.returncode == 0 and "ok: 2 ran, 0 cached, 0 skipped" in human.stderr
    assert _status(cli, "slow")["exitCode"] == 0


def test_attach_to_a_failed_detached_build_exits_1(cli: Cli) -> None:
    cli.write(SLOW.replace("echo s > /output/s", "exit 4"))
    assert cli.run("build", "--detach").returncode == 0
    attached = cli.run("attach", "slow")
    assert attached.returncode == 1
    assert "FAILED  sleepy  cmd failed with exit code 4" in attached.stderr


def test_cancel_stops_the_build_removes_containers_and_records_130(cli: Cli) -> None:
    cli.write(FOREVER)
    assert cli.run("build", "--detach").returncode == 0
    cli.wait_for_container("sleepy")
    assert "[building]" in cli.run("show", "slow").stdout
    refused = cli.run("rm", "slow")
    assert refused.returncode == 2 and "a live build holds workspace 'slow'" in refused.stderr
    cancelled = cli.run("cancel", "slow")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == "cancelled the build of workspace slow (it exited with 130)\n"
    assert containers(cli.store) == []
    assert _status(cli, "slow")["exitCode"] == 130
    attached = cli.run("attach", "slow", "--json")
    assert attached.returncode == 130
    assert cli.events(attached.stdout)[-1] == {**cli.events(attached.stdout)[-1], "event": "PIPELINE_FAILED", "interrupted": True}
    again = cli.events(cli.run("build", "quick", "--json").stdout)
    assert any(e["event"] == "STEP_CACHED" and e["step"] == "quick" for e in again)  # finished steps were kept
    nothing = cli.run("cancel", "slow")
    assert (nothing.returncode, nothing.stderr) == (2, "pipex: no build of workspace 'slow' is running\n")


def test_attach_while_running_starts_from_the_first_event(cli: Cli) -> None:
    cli.write(SLOW)
    assert cli.run("build", "--detach").returncode == 0
    cli.wait_for_container("sleepy")
    attached = cli.run("attach", "slow", "--json")
    kinds = [e["event"] for e in cli.events(attached.stdout)]
    assert kinds[0] == "PIPELINE_START" and kinds[-1] == "PIPELINE_FINISHED"
    assert attached.returncode == 0


def test_a_second_detach_while_one_runs_is_refused(cli: Cli) -> None:
    cli.write(FOREVER)
    assert cli.run("build", "--detach").returncode == 0
    cli.wait_for_container("sleepy")
    second = cli.run("build", "--detach")
    assert (second.returncode, second.stderr) == (
        2, "pipex: a build of workspace 'slow' is already running; follow it with: pipex attach slow\n"
    )
    assert cli.run("cancel", "slow").returncode == 0


def test_config_detach_true_makes_detach_the_default_and_attach_overrides(cli: Cli) -> None:
    cli.write(SLOW, config="detach: true\n")
    detached = cli.run("build", "--json")
    assert detached.returncode == 0
    doc = json.loads(detached.stdout)
    assert doc["workspace"] == "slow" and doc["state"] in ("running", "finished")
    assert cli.run("attach", "slow").returncode == 0
    foreground = cli.run("build", "--attach", "--json")
    assert foreground.returncode == 0
    assert [e["event"] for e in cli.events(foreground.stdout)][-1] == "PIPELINE_FINISHED"


def test_logs_follow_streams_a_running_step_until_it_ends(cli: Cli) -> None:
    cli.write(SLOW)
    assert cli.run("build", "--detach").returncode == 0
    cli.wait_for_container("sleepy")
    followed = cli.run("logs", "slow", "sleepy", "--follow", "--stream", "stdout")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "tick 1\ntick 2\ntick 3\n"
    assert cli.run("attach", "slow").returncode == 0
