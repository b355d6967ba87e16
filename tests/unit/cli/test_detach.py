"""The build record (event log + status) and attach / cancel over it, without Docker."""

from __future__ import annotations

import json
import subprocess
import sys

from pipex.ops.record import BUILD_LOG, BUILD_STATUS, BuildRecorder, read_events, read_status
from pipex.events import Event, EventKind


def _record(store, workspace: str, exit_code: int, *, failed: bool = False) -> None:
    recorder = BuildRecorder(store, workspace)
    recorder(Event(EventKind.WARNING, data={"message": "waited"}))
    recorder(Event(EventKind.PIPELINE_START, data={"workspace": workspace, "steps": ["a"]}))
    recorder(Event(EventKind.STEP_STARTING, "a", {"reason": "never built"}))
    if failed:
        recorder(Event(EventKind.STEP_FAILED, "a", {"reason": "exit code 3", "exitCode": 3}))
        recorder(Event(EventKind.PIPELINE_FAILED, data={"workspace": workspace, "failed": 1}))
    else:
        recorder(Event(EventKind.STEP_FINISHED, "a", {"durationMs": 5}))
        recorder(Event(EventKind.PIPELINE_FINISHED, data={"workspace": workspace, "ran": 1}))
    recorder.finish(exit_code)


def test_recorder_writes_events_from_pipeline_start_and_the_exit_code(store) -> None:
    _record(store, "demo", 0)
    kinds = [e.kind for e in read_events(store, "demo")]
    assert kinds == [EventKind.WARNING, EventKind.PIPELINE_START, EventKind.STEP_STARTING, EventKind.STEP_FINISHED, EventKind.PIPELINE_FINISHED]
    status = read_status(store, "demo")
    assert (status.state, status.exit_code, status.detached) == ("finished", 0, False)


def test_a_build_that_never_started_does_not_touch_the_record(store) -> None:
    _record(store, "demo", 1, failed=True)
    waiting = BuildRecorder(store, "demo")
    waiting(Event(EventKind.WARNING, data={"message": "another build of workspace 'demo' is running; waiting"}))
    waiting.finish(2)  # e.g. Docker was unreachable: the live build's record stays
    assert read_status(store, "demo").exit_code == 1
    assert read_events(store, "demo")[-1].kind is EventKind.PIPELINE_FAILED


def test_attach_after_the_end_replays_and_exits_with_the_build_code(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    _record(store, "demo", 1, failed=True)
    result = pipex("attach", "demo")
    assert result.exit_code == 1
    assert "FAILED  a  exit code 3" in result.stderr
    lines = pipex("attach", "demo", "--json").stdout.splitlines()
    assert [json.loads(line)["event"] for line in lines] == [
        "WARNING", "PIPELINE_START", "STEP_STARTING", "STEP_FAILED", "PIPELINE_FAILED",
    ]


def test_attach_to_a_successful_build_exits_0(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    _record(store, "demo", 0)
    result = pipex("attach", "demo")
    assert result.exit_code == 0
    assert "ok: 1 ran" in result.stderr


def test_attach_without_a_recorded_build_is_exit_2(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    result = pipex("attach", "demo")
    assert (result.exit_code, result.stderr) == (
        2, "pipex: no build of workspace 'demo' was recorded; start one with: pipex build --detach -w demo\n"
    )


def test_attach_to_a_build_whose_process_died_says_so(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    directory = store.root / "workspaces" / "demo"
    (directory / BUILD_STATUS).write_text(json.dumps({"state": "running", "pid": int(dead.stdout), "startTime": 1}))
    (directory / BUILD_LOG).write_text(Event(EventKind.PIPELINE_START, data={"workspace": "demo"}).to_json() + "\n")
    result = pipex("attach", "demo")
    assert result.exit_code == 1
    assert result.stderr.endswith("pipex: the build process ended without recording its exit code (killed?)\n")


def test_cancel_without_a_running_build_is_exit_2(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    _record(store, "demo", 0)
    result = pipex("cancel", "demo")
    assert (result.exit_code, result.stderr) == (2, "pipex: no build of workspace 'demo' is running\n")


def test_inspect_timeline_of_the_recorded_build(pipex, store, tmp_path) -> None:
    store.create_workspace("demo", store.root)
    _record(store, "demo", 0)
    trace = json.loads(pipex("inspect", "demo", "--timeline").stdout)
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert [(e["name"], e["tid"]) for e in spans] == [("a", 1), ("build demo", 0)]
    out = tmp_path / "trace.json"
    assert pipex("inspect", "demo", "--timeline", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["traceEvents"]


def test_inspect_timeline_without_a_record_is_exit_2(pipex, store) -> None:
    store.create_workspace("demo", store.root)
    result = pipex("inspect", "demo", "--timeline")
    assert result.exit_code == 2 and "no build of workspace 'demo' was recorded" in result.stderr


def test_live_lines_of_a_replayed_build_show_the_true_elapsed_time() -> None:
    import time

    from pipex.cli.render import LiveRenderer

    live = LiveRenderer()
    try:
        live(Event(EventKind.STEP_STARTING, "slow", {"reason": "never built"}, time.time() - 300))
        assert "running slow  30" in live._render().plain  # ~300s, not 0.0s since the replay
    finally:
        live.close()


def test_show_marks_the_steps_a_live_build_runs(pipex, seed, store) -> None:
    from pipex.store.locks import workspace_lock_name as lock_name

    seed.run("demo", "a", {"x": "1"})
    recorder = BuildRecorder(store, "demo")
    recorder(Event(EventKind.PIPELINE_START, data={"workspace": "demo"}))
    recorder(Event(EventKind.STEP_STARTING, "a"))
    recorder(Event(EventKind.STEP_STARTING, "b"))
    recorder(Event(EventKind.STEP_CACHED, "c"))
    with store.lock(lock_name("demo")):
        rows = [line.split()[:2] for line in pipex("show", "demo").stdout.splitlines()[2:]]
        assert json.loads(pipex("show", "demo", "--json").stdout)["running"] == ["a", "b"]
    assert rows == [["a", "running"], ["b", "running"]]
    recorder.finish(0)


def test_a_store_that_cannot_take_the_record_does_not_fail_the_build(store, capsys, monkeypatch) -> None:
    import pipex.ops.record as detach

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(detach, "open", refuse, raising=False)
    recorder = BuildRecorder(store, "demo")
    recorder(Event(EventKind.PIPELINE_START, data={"workspace": "demo"}))
    recorder(Event(EventKind.STEP_STARTING, "a"))
    recorder.finish(0)
    assert capsys.readouterr().err.count("pipex: warning: cannot record the build in") == 1
