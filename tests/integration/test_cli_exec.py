"""pipex exec: one step from a file against a workspace's runs, recorded or ephemeral."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, containers, remove_containers

pytestmark = pytest.mark.docker


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A temp project (already built) and store; containers labelled with the store are removed after."""
    project = Cli(tmp_path / "project", tmp_path / "store")
    project.write(
        f"""\
        id: demo
        steps:
          - {{id: fetch, image: {BUSYBOX}, cmd: echo hello world > /output/words.txt}}
          - {{id: count, image: {BUSYBOX}, inputs: [{{step: fetch}}], cmd: wc -w < /input/fetch/words.txt > /output/n}}
        """,
        files={
            "step.yaml": f"""\
                id: shout
                image: {BUSYBOX}
                inputs: [{{step: fetch}}]
                envFile: shout.env
                cmd: tr a-z A-Z < /input/fetch/words.txt | tee /output/loud.txt; echo "$GREETING"; ls /input
                """,
            "shout.env": "GREETING=hi from envFile\n",
            "multi.yaml": f"""\
                steps:
                  - {{id: one, image: {BUSYBOX}, cmd: echo one > /output/one}}
                  - {{id: two, image: {BUSYBOX}, cmd: "cat /input/n/n > /output/copy"}}
                """,
        },
    )
    assert project.run("build").returncode == 0
    yield project
    assert remove_containers(project.store) == [], "the test left containers behind"


def test_exec_records_a_run_in_the_workspace_and_is_cached_the_second_time(cli: Cli) -> None:
    first = cli.run("exec", "demo", "-f", "step.yaml", "--verbose")
    assert first.returncode == 0, first.stderr
    assert "[shout] HELLO WORLD" in first.stderr and "[shout] hi from envFile" in first.stderr
    assert cli.run("cat", "demo", "shout", "loud.txt").stdout == "HELLO WORLD\n"
    second = cli.run("exec", "demo", "-f", "step.yaml")
    assert second.returncode == 0 and "cached  shout" in second.stderr
    forced = cli.run("exec", "demo", "-f", "step.yaml", "--force", "--json")
    kinds = [e["event"] for e in cli.events(forced.stdout)]
    assert kinds == ["STEP_STARTING", "STEP_PHASE", "STEP_FINISHED", "EXEC_RESULT"]


def test_ephemeral_streams_stdout_and_keeps_nothing(cli: Cli) -> None:
    runs_before = sorted(p.name for p in (cli.store / "runs").iterdir())
    done = cli.run("exec", "demo", "-f", "step.yaml", "--ephemeral")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "HELLO WORLD\nhi from envFile\nfetch\n"
    assert sorted(p.name for p in (cli.store / "runs").iterdir()) == runs_before
    assert "shout" not in cli.run("show", "demo").stdout
    assert containers(cli.store) == []


def test_input_aliases_and_a_step_picked_from_a_pipeline_file(cli: Cli) -> None:
    done = cli.run("exec", "demo", "-f", "multi.yaml", "--step", "two", "--input", "n=count", "--ephemeral")
    assert done.returncode == 0, done.stderr
    recorded = cli.run("exec", "demo", "-f", "multi.yaml", "--step", "two", "-i", "n=count")
    assert recorded.returncode == 0
    assert cli.run("cat", "demo", "two", "copy").stdout == "2\n"


def test_exec_errors_are_one_line_with_exit_2_and_failures_exit_1(cli: Cli) -> None:
    cases = {
        ("-f", "multi.yaml"): "pipex: multi.yaml has 2 steps (one, two); pick one with --step\n",
        ("-f", "step.yaml", "--input", "x=nope"): "pipex: input 'x': workspace 'demo' has no successful run of step 'nope' (its steps: count, fetch)\n",
        ("-f", "missing.yaml"): "pipex: no step file missing.yaml\n",
    }
    for args, message in cases.items():
        done = cli.run("exec", "demo", *args)
        assert (done.returncode, done.stderr) == (2, message), args
    (cli.root / "fail.yaml").write_text(f"{{id: bad, image: {BUSYBOX}, cmd: echo oops >&2; exit 5}}\n")
    failed = cli.run("exec", "demo", "-f", "fail.yaml", "--ephemeral")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "pipex: step 'bad' failed: cmd failed with exit code 5"
    recorded = cli.run("exec", "demo", "-f", "fail.yaml", "--json")
    assert recorded.returncode == 1
    result = json.loads(recorded.stdout.splitlines()[-1])
    assert (result["outcome"], result["exit_code"]) == ("failed", 5)
    assert cli.run("logs", "demo", "bad").stderr == "oops\n"
