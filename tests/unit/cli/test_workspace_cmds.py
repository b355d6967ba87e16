"""rm, rm-step, clean: what they remove, JSON, and refusal while a live build holds a workspace."""

from __future__ import annotations

import json

from conftest import Seeder

from pipex.store.locks import workspace_lock_name as lock_name


def test_rm_removes_workspaces_and_gc_then_frees_their_runs(pipex, seed) -> None:
    run = seed.run("demo", "fetch", {"a": "1"})
    seed.run("other", "x", {"b": "2"})
    result = pipex("rm", "demo")
    assert (result.exit_code, result.stdout.splitlines()[0]) == (0, "removed workspace demo")
    assert seed.store.workspaces() == ["other"]
    assert seed.store.has_run(run)  # until gc
    assert pipex("gc").exit_code == 0
    assert not seed.store.has_run(run)


def test_rm_unknown_workspace_is_exit_2_and_removes_nothing(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    result = pipex("rm", "demo", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("pipex: no workspace 'nope' in the store")
    assert seed.store.workspaces() == ["demo"]


def test_rm_is_refused_while_a_build_holds_the_workspace(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    seed.run("other", "x", {"b": "2"})
    with seed.store.lock(lock_name("demo")):  # what a live build holds
        result = pipex("rm", "other", "demo")
    assert result.exit_code == 2
    assert result.stderr == (
        "pipex: cannot remove workspaces other, demo: a live build holds workspace 'demo'; "
        "wait for it (pipex attach demo) or stop it (pipex cancel demo)\n"
    )
    assert seed.store.workspaces() == ["demo", "other"]


def test_rm_json(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    assert json.loads(pipex("rm", "demo", "--json").stdout) == {"workspaces": ["demo"], "refs": [], "gc": None}


def test_rm_step_drops_current_and_failed_refs(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    seed.run("demo", "fetch", {}, status="failed")
    seed.run("demo", "count", {"b": "1"})
    result = pipex("rm-step", "demo", "fetch", "--json")
    assert json.loads(result.stdout)["refs"] == ["demo/steps/fetch", "demo/failed/fetch"]
    assert seed.store.workspace_refs("demo") .keys() == {"count"}
    assert seed.store.workspace_refs("demo", kind="failed") == {}


def test_rm_step_refused_while_building_and_unknown_step(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    with seed.store.lock(lock_name("demo")):
        busy = pipex("rm-step", "demo", "fetch")
    assert busy.exit_code == 2 and "a live build holds workspace 'demo'" in busy.stderr
    assert seed.store.get_ref("demo", "fetch") is not None
    unknown = pipex("rm-step", "demo", "fetc")
    assert unknown.stderr == "pipex: workspace 'demo' has no step 'fetc' (did you mean 'fetch'?); its steps: fetch\n"


def test_clean_removes_this_projects_workspaces_and_collects(pipex, seed, tmp_path) -> None:
    run = seed.run("demo", "fetch", {"a": "1"})
    seed.run("other", "x", {"b": "2"})
    elsewhere = Seeder(seed.store, tmp_path / "seed2", tmp_path / "another-project")
    kept = elsewhere.run("theirs", "y", {"c": "3"})
    result = pipex("clean", "--yes", "--json")
    doc = json.loads(result.stdout)
    assert doc["workspaces"] == ["demo", "other"]
    assert doc["gc"]["runs"] == 2
    assert seed.store.workspaces() == ["theirs"] and not seed.store.has_run(run) and seed.store.has_run(kept)


def test_clean_all_removes_every_projects_workspaces(pipex, seed, tmp_path) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    Seeder(seed.store, tmp_path / "seed2", tmp_path / "another-project").run("theirs", "y", {"c": "3"})
    result = pipex("clean", "--all", "--yes", "--json")
    assert json.loads(result.stdout)["workspaces"] == ["demo", "theirs"]
    assert seed.store.workspaces() == []


def test_clean_without_a_terminal_and_without_yes_removes_nothing(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    for args in (("clean",), ("clean", "--all")):
        result = pipex(*args)
        assert result.exit_code == 2, result
        assert "pass --yes to confirm without a terminal" in result.stderr
    assert seed.store.workspaces() == ["demo"]


def test_clean_is_refused_while_any_build_runs(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    seed.run("other", "x", {"b": "2"})
    with seed.store.lock(lock_name("other")):
        result = pipex("clean", "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith("pipex: cannot clean the store: a live build holds workspace 'other'")
    assert seed.store.workspaces() == ["demo", "other"]


def test_show_and_list_say_building(pipex, seed) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    with seed.store.lock(lock_name("demo")):
        assert "[building]" in pipex("show", "demo").stdout
        assert json.loads(pipex("list", "--json").stdout)[0]["building"] is True
