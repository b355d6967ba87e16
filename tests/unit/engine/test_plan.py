"""The planner: statuses, every invalidation reason, early cutoff, targets, force, conditions, the image rule."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from plan_helpers import IMAGE, IMAGE_ID, build_all, open_store, pipeline, record, resolver, step, tree_of
from pipex.errors import DockerUnavailableError, HostPathError, UsageError
from pipex.engine.hosts import changed_host_files
from pipex.engine.explain import explain
from pipex.engine.images import is_pinned
from pipex.engine.plan import Planner, StepStatus, make_plan, resolve_step
from pipex.spec.model import SetupSpec
from pipex.store import Store

OLD = time.time() - 3600


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    for name, text in (("a.py", "print(1)\n"), ("b.py", "print(2)\n")):
        (root / "scripts" / name).write_text(text)
        os.utime(root / "scripts" / name, (OLD, OLD))
    return root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def _pipe(project: Path, **changes: dict):
    steps = {
        "fetch": step("fetch"),
        "stats": step("stats", "fetch", sources=[("scripts", "/src")]),
        "report": step("report", "stats"),
    }
    for step_id, fields in changes.items():
        steps[step_id] = replace(steps[step_id], **fields)
    return pipeline(project, *steps.values())


def _plan(pipe, store, **kwargs):
    kwargs.setdefault("image_resolver", resolver())
    kwargs.setdefault("workspace", "demo")
    return make_plan(pipe, store, **kwargs)


def _status(plan) -> dict[str, str]:
    return {s.step_id: s.status.value for s in plan.steps}


def _reasons(plan, step_id: str) -> tuple[str, ...]:
    return plan.step(step_id).reasons


# -- statuses and reasons -----------------------------------------------------------


def test_nothing_built_first_step_runs_and_dependants_are_pending(project: Path, store: Store) -> None:
    plan = _plan(_pipe(project), store)
    assert [s.step_id for s in plan.steps] == ["fetch", "stats", "report"]
    assert _status(plan) == {"fetch": "run", "stats": "pending", "report": "pending"}
    assert _reasons(plan, "fetch") == ("never built",)
    assert _reasons(plan, "stats") == ("input 'fetch' will run",)
    assert plan.step("fetch").fingerprint and plan.step("fetch").document
    assert plan.step("stats").fingerprint is None


def test_built_pipeline_is_all_cached_with_run_and_age(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    plan = _plan(pipe, store)
    assert _status(plan) == {"fetch": "cached", "stats": "cached", "report": "cached"}
    fetch = plan.step("fetch")
    assert fetch.run_id == fetch.fingerprint
    assert 50 < fetch.age_sec < 120
    assert fetch.output_tree == tree_of(store, "fetch")
    assert plan.up_to_date


def test_cmd_change_reruns_the_step_and_pends_dependants(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    plan = _plan(_pipe(project, stats={"cmd": ("python", "/src/b.py")}), store)
    assert _status(plan) == {"fetch": "cached", "stats": "run", "report": "pending"}
    assert _reasons(plan, "stats") == ("cmd changed",)
    assert _reasons(plan, "report") == ("input 'stats' will run",)


def test_setup_change_is_named(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    plan = _plan(_pipe(project, fetch={"setup": SetupSpec(("pip", "install", "x"))}), store)
    assert _reasons(plan, "fetch") == ("setup changed",)


def test_env_changes_name_the_variables(project: Path, store: Store) -> None:
    build_all(_pipe(project, fetch={"env": {"A": "1", "B": "2"}}), store)
    plan = _plan(_pipe(project, fetch={"env": {"A": "9", "C": "3"}}), store)
    assert _reasons(plan, "fetch") == ("env A changed", "env B removed", "env C added")


def test_output_path_and_network_changes_are_named(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    plan = _plan(_pipe(project, fetch={"output_path": "/out", "allow_network": True}), store)
    assert _reasons(plan, "fetch") == ("output path changed", "network changed")


def test_container_options_that_change_results_are_named(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    plan = _plan(_pipe(project, fetch={"user": "1000", "cap_drop": ("ALL",)}), store)
    assert _reasons(plan, "fetch") == ("user changed", "capDrop changed")


def test_edit_to_a_source_file_names_the_file(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    (project / "scripts" / "a.py").write_text("print('changed')\n")
    plan = _plan(pipe, store)
    assert _status(plan) == {"fetch": "cached", "stats": "run", "report": "pending"}
    assert _reasons(plan, "stats") == ("file scripts/a.py changed",)


def test_many_changed_files_are_summarised(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    for index in range(5):
        (project / "scripts" / f"new{index}.py").write_text("x")
    plan = _plan(pipe, store)
    assert _reasons(plan, "stats") == (
        "file scripts/new0.py changed",
        "file scripts/new1.py changed",
        "file scripts/new2.py changed",
        "and 2 more files changed",
    )


def test_changed_mount_without_an_old_listing_names_the_mount(project: Path, store: Store, tmp_path: Path) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    shutil.rmtree(store.root / "statcache")  # stat cache and earlier listings gone
    (project / "scripts" / "a.py").write_text("print('changed')\n")
    plan = _plan(pipe, store)
    assert _reasons(plan, "stats") == ("source 'scripts' changed",)


def test_input_content_change_is_named(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    changed = _pipe(project, fetch={"cmd": ("curl", "-o", "/output/new")})
    first = _plan(changed, store)
    assert _status(first) == {"fetch": "run", "stats": "pending", "report": "pending"}
    record(store, "demo", changed, first.step("fetch"), version=1)  # fetch ran: new content
    plan = _plan(changed, store)
    assert _status(plan) == {"fetch": "cached", "stats": "run", "report": "pending"}
    assert _reasons(plan, "stats") == ("input 'fetch' changed",)


def test_input_tree_change_reason_via_decide(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    planner = Planner(pipe, store, workspace="demo", image_resolver=resolver())
    decided = planner.decide("stats", input_trees={"fetch": tree_of(store, "fetch", 7)})
    assert decided.status is StepStatus.RUN
    assert decided.reasons == ("input 'fetch' changed",)


def test_early_cutoff_same_output_tree_leaves_dependants_cached(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    before = build_all(pipe, store)
    # stats's command changes; it re-runs and yields the same output as before.
    changed = _pipe(project, stats={"cmd": ("python", "/src/a.py", "--same-output")})
    plan = _plan(changed, store)
    assert _status(plan) == {"fetch": "cached", "stats": "run", "report": "pending"}
    record(store, "demo", changed, plan.step("stats"), version=0)
    after = _plan(changed, store)
    assert _status(after) == {"fetch": "cached", "stats": "cached", "report": "cached"}
    assert after.step("report").fingerprint == before.step("report").fingerprint
    # The runner's path agrees: same input tree => same fingerprint => cached.
    planner = Planner(changed, store, workspace="demo", image_resolver=resolver())
    assert planner.decide("report", input_trees={"stats": tree_of(store, "stats")}).status is StepStatus.CACHED


def test_different_output_reruns_dependants(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    changed = _pipe(project, stats={"cmd": ("python", "/src/a.py", "--other-output")})
    record(store, "demo", changed, _plan(changed, store).step("stats"), version=1)
    plan = _plan(changed, store)
    assert _status(plan) == {"fetch": "cached", "stats": "cached", "report": "run"}
    assert _reasons(plan, "report") == ("input 'stats' changed",)


def test_image_tag_moved_to_another_id(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    plan = _plan(pipe, store, image_resolver=resolver({IMAGE: "sha256:" + "2" * 64}))
    assert _status(plan) == {"fetch": "run", "stats": "pending", "report": "pending"}
    assert _reasons(plan, "fetch") == (f"image {IMAGE} now points to another image",)


def test_changed_image_reference_is_named(project: Path, store: Store) -> None:
    build_all(_pipe(project), store)
    other = "python:3.13-slim"
    plan = _plan(_pipe(project, fetch={"image": other}), store, image_resolver=resolver({IMAGE: IMAGE_ID, other: "sha256:" + "3" * 64}))
    assert _reasons(plan, "fetch") == (f"image changed: {IMAGE} -> {other}",)


def test_image_missing_locally_runs_without_fingerprint(project: Path, store: Store) -> None:
    plan = _plan(_pipe(project), store, image_resolver=resolver({}))
    fetch = plan.step("fetch")
    assert fetch.status is StepStatus.RUN and fetch.fingerprint is None
    assert fetch.reasons == (f"image {IMAGE} not present locally",)


def test_forced_all(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    plan = _plan(pipe, store, force=True)
    assert _status(plan) == {"fetch": "run", "stats": "pending", "report": "pending"}
    assert _reasons(plan, "fetch") == ("forced",)


def test_forced_some_by_id_and_glob(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    plan = _plan(pipe, store, force=frozenset({"rep*"}))
    assert _status(plan) == {"fetch": "cached", "stats": "cached", "report": "run"}
    assert _reasons(plan, "report") == ("forced",)
    with pytest.raises(UsageError, match="unknown step to force 'stat'.*'stats'"):
        _plan(pipe, store, force=frozenset({"stat"}))


def test_previous_run_removed(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    shutil.rmtree(store.run_path(store.get_ref("demo", "report")))
    plan = _plan(pipe, store)
    assert _reasons(plan, "report") == ("previous run was removed",)


def test_cached_from_another_workspace(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store, workspace="other")
    plan = _plan(pipe, store, workspace="demo")
    assert _status(plan) == {"fetch": "cached", "stats": "cached", "report": "cached"}


def test_explain_falls_back_to_a_generic_reason() -> None:
    doc = {"format": 1, "cmd": ["x"]}
    assert explain(None, doc) == ["never built"]
    assert explain({"format": 0}, doc) == ["fingerprint format changed"]
    assert explain(doc, dict(doc)) == ["fingerprint changed"]


def test_missing_mount_is_a_clear_error(project: Path, store: Store) -> None:
    pipe = _pipe(project, fetch={"mounts": (replace(step("x", mounts=[("nope", "/n")]).mounts[0]),)})
    with pytest.raises(HostPathError, match="'nope'"):
        _plan(pipe, store)


# -- targets ------------------------------------------------------------------------


def _wide(project: Path):
    return pipeline(
        project,
        step("fetch"),
        step("report_a", "fetch"),
        step("report_b", "fetch"),
        step("lint"),
    )


def test_default_targets_are_the_leaves(project: Path, store: Store) -> None:
    plan = _plan(_wide(project), store)
    assert plan.targets == ("report_a", "report_b", "lint")
    assert [s.step_id for s in plan.steps] == ["fetch", "report_a", "report_b", "lint"]


def test_target_selects_it_and_what_it_needs(project: Path, store: Store) -> None:
    plan = _plan(_wide(project), store, targets=("report_b",))
    assert [s.step_id for s in plan.steps] == ["fetch", "report_b"]


def test_glob_targets(project: Path, store: Store) -> None:
    plan = _plan(_wide(project), store, targets=("report*",))
    assert plan.targets == ("report_a", "report_b")
    assert [s.step_id for s in plan.steps] == ["fetch", "report_a", "report_b"]


def test_unknown_target_names_the_closest_ids(project: Path, store: Store) -> None:
    with pytest.raises(UsageError, match=r"unknown target 'reprot_a'.*did you mean 'report_a'"):
        _plan(_wide(project), store, targets=("reprot_a",))
    with pytest.raises(UsageError, match=r"unknown target 'zzz\*'"):
        _plan(_wide(project), store, targets=("zzz*",))


# -- conditions and skips ----------------------------------------------------------------


def _conditional(project: Path):
    return pipeline(
        project,
        step("notify", condition="env.CI"),
        step("needs", "notify"),
        step("maybe", optional=("notify",)),
        step("after", "needs"),
    )


def test_false_condition_skips_and_propagates_through_required_inputs(project: Path, store: Store) -> None:
    plan = _plan(_conditional(project), store, condition_env={})
    assert _status(plan) == {"notify": "skipped", "needs": "skipped", "maybe": "run", "after": "skipped"}
    assert _reasons(plan, "notify") == ("condition false: env.CI",)
    assert _reasons(plan, "needs") == ("input 'notify' skipped",)
    assert _reasons(plan, "after") == ("input 'needs' skipped",)
    maybe = plan.step("maybe")
    assert maybe.document["inputs"] == {"notify": {"tree": None, "copyToOutput": False, "optional": True}}


def test_true_condition_runs(project: Path, store: Store) -> None:
    plan = _plan(_conditional(project), store, condition_env={"CI": "1"})
    assert _status(plan) == {"notify": "run", "needs": "pending", "maybe": "pending", "after": "pending"}


def test_condition_env_values(project: Path, store: Store) -> None:
    pipe = pipeline(project, step("prod", condition='env.NODE_ENV == "production"'))
    assert _status(_plan(pipe, store, condition_env={"NODE_ENV": "production"})) == {"prod": "run"}
    assert _status(_plan(pipe, store, condition_env={"NODE_ENV": "dev"})) == {"prod": "skipped"}


# -- the image rule -----------------------------------------------------------------


def test_tags_are_resolved_in_one_call(project: Path, store: Store) -> None:
    other = "node:20"
    pipe = pipeline(project, step("a"), step("b", image=other), step("c", "a", "b"))
    build_all(pipe, store, image_resolver=resolver({IMAGE: IMAGE_ID, other: "sha256:" + "4" * 64}))
    calls: list = []
    plan = _plan(pipe, store, image_resolver=resolver({IMAGE: IMAGE_ID, other: "sha256:" + "4" * 64}, calls))
    assert plan.up_to_date
    assert calls == [[IMAGE, other]]


def test_digest_pinned_images_need_no_docker(project: Path, store: Store) -> None:
    pinned = "python@sha256:" + "9" * 64
    pipe = pipeline(project, step("a", image=pinned), step("b", "a", image=pinned))
    build_all(pipe, store, image_resolver=resolver({pinned: IMAGE_ID}))

    def no_docker(refs: list[str]) -> dict:
        raise AssertionError(f"Docker contacted for {refs}")

    assert _plan(pipe, store, image_resolver=no_docker).up_to_date


def test_offline_reuses_recorded_ids_for_tags(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)

    def no_docker(refs: list[str]) -> dict:
        raise AssertionError(f"Docker contacted for {refs}")

    assert _plan(pipe, store, image_resolver=no_docker, offline=True).up_to_date


def test_offline_without_a_recorded_id_says_so(project: Path, store: Store) -> None:
    plan = _plan(_pipe(project), store, offline=True)
    assert plan.step("fetch").status is StepStatus.RUN
    assert "not resolved: --offline" in _reasons(plan, "fetch")[0]


def test_unreachable_daemon_falls_back_to_recorded_ids_with_a_warning(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)

    def down(refs: list[str]) -> dict:
        raise DockerUnavailableError("cannot reach Docker at unix:///nope")

    plan = _plan(pipe, store, image_resolver=down)
    assert plan.up_to_date
    assert plan.warnings and "cannot reach Docker" in plan.warnings[0]


def test_is_pinned() -> None:
    assert is_pinned("python@sha256:" + "a" * 64)
    assert is_pinned("sha256:" + "a" * 64)
    assert not is_pinned("python:3.12")


# -- what the runner uses -----------------------------------------------------------------


def test_runner_resolves_pending_step_the_same_way(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    final = build_all(pipe, store)
    planner = Planner(pipe, store)  # as the runner builds it: workspace defaults to the pipeline id
    fingerprint, document = resolve_step(
        pipe.step("stats"), input_trees={"fetch": tree_of(store, "fetch")}, image_id=IMAGE_ID, host_hasher=planner.host_hasher
    )
    assert fingerprint == final.step("stats").fingerprint
    assert changed_host_files(planner.host_hasher, document) == []
    (project / "scripts" / "b.py").write_text("edited during the run\n")
    assert changed_host_files(planner.host_hasher, document) == ["scripts/b.py"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_size)
        for p in root.rglob("*")
        if "statcache" not in p.parts
    }


def test_plan_writes_nothing_but_the_stat_cache(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    build_all(pipe, store)
    (project / "scripts" / "a.py").write_text("print('edited')\n")
    before = _snapshot(store.root)
    plan = _plan(pipe, store)
    assert plan.step("stats").status is StepStatus.RUN
    assert _snapshot(store.root) == before
    assert (store.root / "statcache").is_dir()


def test_plan_json_form(project: Path, store: Store) -> None:
    import json

    pipe = _pipe(project)
    build_all(pipe, store)
    data = json.loads(json.dumps(_plan(pipe, store).to_dict()))
    assert data["workspace"] == "demo"
    assert [s["status"] for s in data["steps"]] == ["cached"] * 3
    assert set(data["steps"][0]) == {"step", "status", "reasons", "fingerprint", "run", "ageSec", "imageId", "outputTree", "source"}


def test_offline_trusts_each_steps_own_recorded_image_id(project: Path, store: Store) -> None:
    older = "sha256:" + "6" * 64
    pipe = pipeline(project, step("a"), step("b"))
    build_all(pipe, store, image_resolver=resolver({IMAGE: older}), targets=("a",))
    build_all(pipe, store, image_resolver=resolver({IMAGE: IMAGE_ID}), targets=("b",))
    plan = _plan(pipe, store, offline=True)
    assert plan.up_to_date
    assert (plan.step("a").image_id, plan.step("b").image_id) == (older, IMAGE_ID)


def test_runner_decides_after_pulling_a_missing_image(project: Path, store: Store) -> None:
    pipe = _pipe(project)
    planner = Planner(pipe, store, workspace="demo", image_resolver=resolver({}))
    plan = planner.plan()
    assert _reasons(plan, "fetch") == (f"image {IMAGE} not present locally",)
    decided = planner.decide("fetch", input_trees={}, image_id=IMAGE_ID)
    assert decided.status is StepStatus.RUN and decided.reasons == ("never built",)
    assert decided.fingerprint is not None and decided.document["image"] == IMAGE_ID
