"""show, logs, inspect, cat, export, rm and exit codes after real builds; links made by a container never lead out."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .build_helpers import BUSYBOX
from .cli_helpers import Cli, remove_containers

pytestmark = pytest.mark.docker


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A temp project and store; containers labelled with the store are removed (and reported) after."""
    project = Cli(tmp_path / "project", tmp_path / "store")
    yield project
    assert remove_containers(project.store) == [], "the test left containers behind"


PIPELINE = f"""\
id: demo
steps:
  - id: fetch
    image: {BUSYBOX}
    cmd: echo hello world > /output/words.txt; ln -s words.txt /output/link; echo fetched; echo warn >&2
  - id: count
    image: {BUSYBOX}
    inputs: [{{step: fetch}}]
    cmd: wc -w < /input/fetch/words.txt > /output/count.txt
"""


def test_after_a_build_show_logs_inspect_cat_export_work(cli: Cli, tmp_path: Path) -> None:
    cli.write(PIPELINE)
    assert cli.run("build").returncode == 0
    show = cli.run("show")
    assert show.returncode == 0, show.stderr
    assert [line.split()[:2] for line in show.stdout.splitlines()[2:]] == [["count", "ok"], ["fetch", "ok"]]
    logs = cli.run("logs", "demo", "fetch")
    assert (logs.stdout, logs.stderr) == ("fetched\n", "warn\n")
    meta = json.loads(cli.run("inspect", "demo", "count", "--json").stdout)
    assert meta["status"] == "succeeded" and meta["image_ref"] == BUSYBOX and meta["files"] == 1
    assert cli.run("cat", "demo", "count", "count.txt").stdout.strip() == "2"
    assert cli.run("cat", "demo", "fetch", "link").stdout == "hello world\n"
    dest = tmp_path / "exported"
    assert cli.run("export", "demo", "fetch", str(dest)).returncode == 0
    assert (dest / "words.txt").read_text() == "hello world\n"
    assert os.readlink(dest / "link") == "words.txt"
    listed = json.loads(cli.run("list", "--json").stdout)
    assert [(w["workspace"], w["steps"]) for w in listed] == [("demo", 2)]


def test_links_a_container_makes_to_host_files_are_never_followed(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOP SECRET\n")
    cli.write(
        f"""\
        id: sneaky
        steps:
          - id: evil
            image: {BUSYBOX}
            cmd: echo ok > /output/ok; ln -s {secret} /output/abs; ln -s ../../../../../../..{secret} /output/rel
        """
    )
    build = cli.run("build")
    assert build.returncode == 1
    assert "Traceback" not in build.stderr
    assert "links must stay inside the output" in build.stderr
    for path in ("abs", "rel"):
        cat = cli.run("cat", "sneaky", "evil", path)
        assert cat.returncode == 2 and "TOP SECRET" not in cat.stdout
        # The store refused the output: the failed run keeps only its logs, no output to read.
        assert cat.stderr == (
            "pipex: step 'evil' has no successful run in workspace 'sneaky'; "
            "see why its last run failed: pipex logs sneaky evil\n"
        )
    export = cli.run("export", "sneaky", "evil", str(tmp_path / "out"))
    assert export.returncode == 2 and not (tmp_path / "out").exists()
    inspect = cli.run("inspect", "sneaky", "evil", "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert "links must stay inside the output" in inspect.stdout


def test_links_inside_the_output_are_followed_by_cat(cli: Cli) -> None:
    cli.write(
        f"""\
        id: links
        steps:
          - id: make
            image: {BUSYBOX}
            cmd: mkdir -p /output/d/e; echo deep > /output/d/e/f; ln -s d/e /output/short; ln -s .. /output/d/up
        """
    )
    assert cli.run("build").returncode == 0
    assert cli.run("cat", "links", "make", "short/f").stdout == "deep\n"
    assert cli.run("cat", "links", "make", "d/up/d/up/short/f").stdout == "deep\n"
    climb = cli.run("cat", "links", "make", "d/up/../x")
    assert climb.returncode == 2 and "leads outside the output" in climb.stderr


def test_exit_codes_0_1_2_and_no_traceback(cli: Cli) -> None:
    cli.write(
        f"""\
        id: codes
        steps:
          - {{id: good, image: {BUSYBOX}, cmd: echo g > /output/g}}
          - {{id: bad, image: {BUSYBOX}, cmd: exit 3}}
        """
    )
    assert cli.run("build", "good").returncode == 0
    failed = cli.run("build", "bad")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    for args in (["show", "nope"], ["logs", "codes", "nope"], ["cat", "codes", "good", "missing"], ["rm", "nope"], ["attach", "nope"]):
        done = cli.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("pipex: ") and "Traceback" not in done.stderr
        assert len(done.stderr.splitlines()) == 1
    show = cli.run("show", "codes", "--json")
    states = {s["step"]: (s["state"], s["exit_code"]) for s in json.loads(show.stdout)["steps"]}
    assert states == {"bad": ("failed", 3), "good": ("ok", 0)}


def test_rm_step_makes_the_next_build_restore_the_ref_from_the_cache(cli: Cli) -> None:
    cli.write(PIPELINE)
    assert cli.run("build").returncode == 0
    assert cli.run("rm-step", "demo", "count").returncode == 0
    assert "count" not in cli.run("show").stdout
    again = cli.events(cli.run("build", "--json").stdout)
    assert {e["step"] for e in again if e["event"] == "STEP_CACHED"} == {"fetch", "count"}
    assert cli.run("rm", "demo").returncode == 0
    assert cli.run("list").stdout == "no workspaces\n"


def test_profile_writes_a_chrome_trace_and_inspect_timeline_matches(cli: Cli, tmp_path: Path) -> None:
    cli.write(PIPELINE)
    trace_file = tmp_path / "trace.json"
    assert cli.run("build", "--profile", str(trace_file)).returncode == 0
    trace = json.loads(trace_file.read_text())
    spans = {e["name"]: e for e in trace["traceEvents"] if e["ph"] == "X"}
    assert spans["fetch"]["tid"] == 1 and spans["count"]["ts"] >= spans["fetch"]["ts"] + spans["fetch"]["dur"]
    cached = cli.run("build", "--profile", str(trace_file))
    assert cached.returncode == 0
    instants = [e["name"] for e in json.loads(trace_file.read_text())["traceEvents"] if e["ph"] == "i"]
    assert instants == ["fetch (cached)", "count (cached)"]
    timeline = json.loads(cli.run("inspect", "demo", "--timeline").stdout)
    assert [e["name"] for e in timeline["traceEvents"] if e["ph"] == "i"] == instants
