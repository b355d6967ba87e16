"""show, list, logs, inspect, cat, export over a seeded store: output, JSON, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipex.store.trees import EntryType, TreeEntry


def test_show_lists_steps_with_state_run_age_duration_and_size(pipex, seed) -> None:
    fetch = seed.run("demo", "fetch", {"words.txt": "hello world\n"}, finished_at=time.time() - 7200)
    seed.run("demo", "count", {"n": "2\n"})
    failed = seed.run("demo", "count", {}, status="failed")
    result = pipex("show", "demo")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("workspace demo  (")
    assert lines[1].split() == ["STEP", "STATE", "RUN", "AGE", "DURATION", "SIZE"]
    assert lines[2].split()[:4] == ["count", "failed", "(3)", failed[:12]]
    assert lines[3].split() == ["fetch", "ok", fetch[:12], "2h", "ago", "1.5s", "12", "B"]


def test_show_json_has_every_field(pipex, seed) -> None:
    run = seed.run("demo", "fetch", {"a": "xy"})
    doc = json.loads(pipex("show", "demo", "--json").stdout)
    assert doc["workspace"] == "demo" and doc["building"] is False
    (step,) = doc["steps"]
    assert {k: step[k] for k in ("step", "state", "run_id", "bytes", "files", "duration_ms", "current_run_id")} == {
        "step": "fetch", "state": "ok", "run_id": run, "bytes": 2, "files": 1, "duration_ms": 1500, "current_run_id": run,
    }
    assert step["ageSec"] >= 0


def test_show_defaults_to_the_workspace_of_the_current_directory(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    seed.store.create_workspace("other", Path("/"))
    result = pipex("show")
    assert result.exit_code == 0 and result.stdout.startswith("workspace demo")


def test_unknown_workspace_is_one_line_with_a_suggestion_and_exit_2(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    result = pipex("show", "dmeo")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"pipex: no workspace 'dmeo' in the store at {seed.store.root} (did you mean 'demo'?); workspaces: demo"
    ]


def test_unknown_step_lists_the_workspace_steps(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    result = pipex("logs", "demo", "fecth")
    assert (result.exit_code, result.stderr) == (
        2, "pipex: workspace 'demo' has no step 'fecth' (did you mean 'fetch'?); its steps: fetch\n"
    )


def test_list_shows_workspaces_with_sizes_and_json(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "12345"})
    seed.run("demo", "count", {"b": "12"})
    seed.run("other", "x", {"c": "1"})
    result = pipex("list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["WORKSPACE", "STEPS", "FAILED", "SIZE", "BUILT", "PROJECT"]
    assert rows[1][:5] == ["demo", "2", "0", "7", "B"]
    docs = json.loads(pipex("list", "--json").stdout)
    assert [(d["workspace"], d["steps"], d["bytes"], d["building"]) for d in docs] == [("demo", 2, 7, False), ("other", 1, 1, False)]


def test_list_of_an_empty_store(pipex, store) -> None:
    assert pipex("list").stdout == "no workspaces\n"
    assert pipex("list", "--json").stdout == "[]\n"


def test_logs_prints_stdout_and_stderr_of_the_latest_run(pipex, seed) -> None:
    seed.run("demo", "build", {}, stdout="old\n")
    seed.run("demo", "build", {}, status="failed", stdout="out line\n", stderr="boom\n")
    result = pipex("logs", "demo", "build")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "out line\n", "boom\n")
    assert pipex("logs", "demo", "build", "--stream", "stderr").stdout == ""
    assert pipex("logs", "demo", "build", "--stream", "stdout").stdout == "out line\n"


def test_logs_of_a_given_run_by_prefix_and_as_json(pipex, seed) -> None:
    first = seed.run("demo", "build", {}, stdout="first\nsecond\n")
    seed.run("demo", "build", {"x": "y"}, stdout="newer\n")
    assert pipex("logs", "demo", "build", "--run", first).stdout == "first\nsecond\n"
    ambiguous = pipex("logs", "demo", "build", "--run", "build")
    assert (ambiguous.exit_code, ambiguous.stderr) == (2, "pipex: run prefix 'build' is ambiguous (2 runs)\n")
    lines = pipex("logs", "demo", "build", "--run", first, "--json", "--stream", "stdout").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"stream": "stdout", "line": "first"}, {"stream": "stdout", "line": "second"}]


def test_logs_bad_stream_and_unknown_run_are_usage_errors(pipex, seed) -> None:
    seed.run("demo", "build", {})
    assert pipex("logs", "demo", "build", "--stream", "both2").stderr == "pipex: unknown log stream 'both2': use stdout, stderr or both\n"
    result = pipex("logs", "demo", "build", "--run", "zzz")
    assert (result.exit_code, result.stderr) == (2, "pipex: no run 'zzz' in the store\n")


def test_logs_follow_without_a_live_build_prints_the_recorded_logs(pipex, seed) -> None:
    seed.run("demo", "build", {}, stdout="done\n")
    result = pipex("logs", "demo", "build", "--follow")
    assert (result.exit_code, result.stdout) == (0, "done\n")


def test_inspect_prints_meta_pretty_and_as_json(pipex, seed) -> None:
    run = seed.run("demo", "fetch", {"a": "1"})
    pretty = pipex("inspect", "demo", "fetch")
    assert pretty.exit_code == 0
    assert pretty.stdout.splitlines()[0].startswith(f"run {run}  (")
    assert "  image_ref: pipex-test/busybox:1" in pretty.stdout.splitlines()
    meta = json.loads(pipex("inspect", "demo", "fetch", "--json").stdout)
    assert meta == seed.store.read_run(run).meta.to_dict()


def test_inspect_without_step_says_what_to_type(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    result = pipex("inspect", "demo")
    assert (result.exit_code, result.stderr) == (2, "pipex: name a step: pipex inspect WS STEP (or pipex inspect WS --timeline)\n")


def test_cat_lists_the_output_and_prints_files(pipex, seed) -> None:
    seed.run("demo", "fetch", {"words.txt": "hello\n", "sub/x.txt": "x\n", "link": ("link", "words.txt"), "dl": ("link", "sub")})
    listing = pipex("cat", "demo", "fetch")
    assert listing.stdout.splitlines() == ["dl -> sub", "link -> words.txt", "sub/", "sub/x.txt  (2 B)", "words.txt  (6 B)"]
    assert pipex("cat", "demo", "fetch", "words.txt").stdout == "hello\n"
    assert pipex("cat", "demo", "fetch", "link").stdout == "hello\n"  # a link inside the output is followed
    assert pipex("cat", "demo", "fetch", "dl/x.txt").stdout == "x\n"
    assert pipex("cat", "demo", "fetch", "sub").stdout == "x.txt  (2 B)\n"
    items = json.loads(pipex("cat", "demo", "fetch", "--json").stdout)
    assert {"path": "words.txt", "type": "file", "size": 6, "mode": 0o644, "target": None} in items


def test_cat_of_a_missing_file_is_exit_2(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    result = pipex("cat", "demo", "fetch", "nope.txt")
    assert (result.exit_code, result.stderr) == (2, "pipex: no 'nope.txt' in the output\n")


def _hostile_tree(seed) -> str:
    """A tree whose links lead out of it (ingest refuses these; a damaged or foreign store may hold them)."""
    obj = seed.store.ingest(seed.output({"ok.txt": "fine\n"}))
    ok = seed.store.read_tree(obj.tree_id).get("ok.txt")
    return seed.raw_tree(
        [
            TreeEntry(b"ok.txt", EntryType.FILE, 0o644, ok.oid, ok.size),
            TreeEntry(b"passwd", EntryType.LINK, target=b"../etc/passwd"),
            TreeEntry(b"up", EntryType.LINK, target=b"../../../../etc/passwd"),
            TreeEntry(b"d", EntryType.DIR, 0o755),
            TreeEntry(b"d/sneaky", EntryType.LINK, target=b"../.."),
        ]
    )


def test_cat_refuses_links_that_leave_the_output(pipex, seed) -> None:
    seed.run("demo", "fetch", tree=_hostile_tree(seed))
    assert pipex("cat", "demo", "fetch", "ok.txt").stdout == "fine\n"
    for path, link in (("passwd", "link 'passwd' -> '../etc/passwd'"), ("up", "link 'up' -> '../../../../etc/passwd'"), ("d/sneaky/etc/passwd", "link 'd/sneaky' -> '../..'")):
        result = pipex("cat", "demo", "fetch", path)
        assert result.exit_code == 2, path
        assert result.stdout == ""
        assert result.stderr.startswith(f"pipex: refusing '{path}': it leads outside the output ({link}")
        assert "root:" not in result.stdout


def test_export_copies_the_output_with_links_as_links(pipex, seed, tmp_path: Path) -> None:
    seed.run("demo", "fetch", {"words.txt": "hello\n", "sub/x.txt": "x\n", "link": ("link", "words.txt")})
    dest = tmp_path / "out"
    result = pipex("export", "demo", "fetch", str(dest))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("exported fetch (run fetch")
    assert (dest / "words.txt").read_text() == "hello\n"
    assert (dest / "sub" / "x.txt").read_text() == "x\n"
    assert os.readlink(dest / "link") == "words.txt"
    again = pipex("export", "demo", "fetch", str(dest))
    assert (again.exit_code, again.stderr) == (2, f"pipex: cannot export to {dest}: the directory is not empty\n")


def test_export_json(pipex, seed, tmp_path: Path) -> None:
    run = seed.run("demo", "fetch", {"a": "12"})
    doc = json.loads(pipex("export", "demo", "fetch", str(tmp_path / "o"), "--json").stdout)
    assert doc["runId"] == run and doc["files"] == 1 and doc["bytes"] == 2


def test_export_refuses_a_tree_with_escaping_links_and_writes_nothing(pipex, seed, tmp_path: Path) -> None:
    seed.run("demo", "fetch", tree=_hostile_tree(seed))
    dest = tmp_path / "out"
    result = pipex("export", "demo", "fetch", str(dest))
    assert result.exit_code == 2
    assert result.stderr == (
        "pipex: cannot export: refusing 'd/sneaky': it leads outside the output (link 'd/sneaky' -> '../..'); "
        "pipex never follows links out of a step's output\n"
    )
    assert not dest.exists()


def test_absolute_links_never_reach_a_tree(pipex, seed) -> None:
    # The store refuses absolute targets when reading a tree: cat says the tree is damaged, prints nothing.
    tree = seed.raw_tree([TreeEntry(b"passwd", EntryType.LINK, target=b"/etc/passwd")])
    seed.run("demo", "fetch", tree=tree)
    result = pipex("cat", "demo", "fetch", "passwd")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"pipex: tree {tree} is damaged (bad link target for 'passwd'); run 'pipex verify --repair'\n"


def test_export_and_cat_need_a_successful_run(pipex, seed, tmp_path: Path) -> None:
    seed.run("demo", "fetch", {}, status="failed")
    result = pipex("cat", "demo", "fetch")
    assert (result.exit_code, result.stderr) == (
        2, "pipex: step 'fetch' has no successful run in workspace 'demo'; see why its last run failed: pipex logs demo fetch\n"
    )


def test_user_errors_have_no_traceback_unless_pipex_debug(store) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PIPEX_DEBUG"}
    quiet = subprocess.run([sys.executable, "-m", "pipex", "show", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.startswith("pipex: no workspace 'nope'")
    debug = subprocess.run(
        [sys.executable, "-m", "pipex", "show", "nope"], env={**env, "PIPEX_DEBUG": "1"}, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" in debug.stderr and "UsageError: no workspace 'nope'" in debug.stderr


def test_logs_json_keeps_a_last_line_without_newline(pipex, seed) -> None:
    seed.run("demo", "build", {}, stdout="one\ntwo", stderr="e")
    lines = [json.loads(line) for line in pipex("logs", "demo", "build", "--json").stdout.splitlines()]
    assert lines == [{"stream": "stdout", "line": "one"}, {"stream": "stdout", "line": "two"}, {"stream": "stderr", "line": "e"}]
