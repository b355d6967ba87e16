"""A stateful model test: random sequences of edits, builds, removals, gc, repair, kills and races on a real store and engine.

Hypothesis drives a ``RuleBasedStateMachine`` against a small model of what
each step's output must be for the current project (its inputs, its command,
its upstream). After every rule, whatever it was, the invariants hold:

- a build that finished left every step it built with exactly the model's output;
- ``plan`` says ``cached`` for a step only with a run whose output is the
  model's, and says it whenever the step's ref already holds that output;
- ``verify`` finds no damage; no container with the store's label is left;
  no staging dir of a finished process is left.

Rules run per CI run: ``PIPEX_RELIABILITY_MODEL_RULES`` (default 200), in
sequences of up to ``PIPEX_RELIABILITY_MODEL_STEPS`` (default 20), within
``PIPEX_RELIABILITY_MODEL_SECONDS`` (default 900; too few rules in it fails).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from pipex import api
from pipex.store import Store
from pipex.store.gc import gc, prune
from pipex.store.verify import verify

from .conftest import BUSYBOX, KIT_IMAGES, containers, iterations, remove_containers, start_pipex

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STEPS = ("a", "b", "c")
NAMES = ("x.txt", "y.txt", "z.txt")


def _pipeline(variants: dict[str, int]) -> str:
    """a reads the mount, b reads a, c stands alone; each command's variant shows in its output."""
    return f"""\
id: model
steps:
  - id: a
    image: {BUSYBOX}
    mounts: [{{host: data, container: /data}}]
    cmd: ls /data > /output/out; for f in /data/*.txt; do [ -f "$f" ] && cat "$f" >> /output/out; done; echo A{variants['a']} >> /output/out
  - id: b
    image: {BUSYBOX}
    inputs: [{{step: a}}]
    cmd: cat /input/a/out > /output/out; echo B{variants['b']} >> /output/out
  - id: c
    image: {BUSYBOX}
    cmd: echo C{variants['c']} > /output/out
"""


class PipexModel(RuleBasedStateMachine):
    """The project, the store, and what each step's output must be."""

    rules_run = 0  # counted across examples: the test asserts it reached its budget

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(os.environ["PIPEX_MODEL_TMP"]) / f"m{time.time_ns()}"
        self.root = self.tmp / "project"
        self.store_root = self.tmp / "store"
        self.files: dict[str, str] = {}
        self.dirs: list[str] = []
        self.variants = {step: 0 for step in STEPS}
        self.just_built: set[str] = set()  # the steps the last rule built (when it was a build)

    # -- the model ---------------------------------------------------------------------

    def expected(self, step: str) -> str:
        """The output the step must have for the project as it is now."""
        if step == "c":
            return f"C{self.variants['c']}\n"
        if step == "b":
            return self.expected("a") + f"B{self.variants['b']}\n"
        listing = "".join(f"{name}\n" for name in sorted([*self.files, *self.dirs]))
        contents = "".join(self.files[name] for name in sorted(self.files))
        return listing + contents + f"A{self.variants['a']}\n"

    def write_project(self) -> None:
        (self.root / "pipeline.yaml").write_text(_pipeline(self.variants))

    def output_of(self, run_id: str | None) -> str | None:
        if run_id is None:
            return None
        store = Store.open(self.store_root)
        try:
            tree = store.read_run(run_id).meta.output_tree
            return (store.checkout(tree) / "out").read_text() if tree else None
        except Exception:
            return None

    # -- rules -------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        (self.root / "data").mkdir(parents=True)
        (self.root / ".pipex.yml").write_text(KIT_IMAGES)
        self.write_project()

    @rule(name=st.sampled_from(NAMES), text=st.sampled_from(["1\n", "2\n", "three\n"]))
    def edit_input(self, name: str, text: str) -> None:
        (self.root / "data" / name).write_text(text)
        self.files[name] = text
        self.just_built = set()

    @rule()
    def add_empty_dir(self) -> None:
        name = f"d{len(self.dirs)}"
        (self.root / "data" / name).mkdir()
        self.dirs.append(name)
        self.just_built = set()

    @rule(step=st.sampled_from(STEPS), variant=st.integers(0, 2))
    def edit_command(self, step: str, variant: int) -> None:
        self.variants[step] = variant
        self.write_project()
        self.just_built = set()

    @rule(wanted=st.sets(st.sampled_from(STEPS), max_size=2), forced=st.sets(st.sampled_from(STEPS), max_size=2))
    def build(self, wanted: set[str], forced: set[str]) -> None:
        result = api.build(self.root, targets=sorted(wanted), store=self.store_root, force=sorted(forced) or False)
        assert result.ok, [(r.step_id, r.outcome, r.reason) for r in result.results]
        for step_result in result.results:
            assert self.output_of(step_result.run_id) == self.expected(step_result.step_id), step_result
        self.just_built = {r.step_id for r in result.results}

    @rule(step=st.sampled_from(STEPS))
    def rm_step(self, step: str) -> None:
        self.just_built = set()
        try:
            api.remove_step("model", step, store=self.store_root)
        except Exception as error:  # no such workspace or step yet
            assert "has no step" in str(error) or "no workspace" in str(error), error

    @rule()
    def rm_workspace(self) -> None:
        self.just_built = set()
        try:
            api.remove_workspaces(["model"], store=self.store_root)
        except Exception as error:
            assert "no workspace" in str(error), error

    @rule()
    def prune_and_gc(self) -> None:
        self.just_built = set()  # prune keeps the current runs: still cached, but not promised here
        store = Store.open(self.store_root)
        if "model" in store.workspaces():
            prune(store, "model")
        gc(store)

    @rule()
    def verify_repair(self) -> None:
        self.just_built = set()
        assert verify(Store.open(self.store_root), repair=True).ok

    @rule()
    def exec_ephemeral(self) -> None:
        store = Store.open(self.store_root)
        if store.get_ref("model", "a") is None if "model" in store.workspaces() else True:
            return
        step_file = self.tmp / "one.yaml"
        step_file.write_text(f"id: e\nimage: {BUSYBOX}\ninputs: [{{step: a}}]\ncmd: cat /input/a/out\n")
        lines: list[str] = []
        result = api.exec_step(step_file, "model", ephemeral=True, store=self.store_root, on_output=lambda s, n, line: lines.append(line))
        assert result.outcome == "succeeded", result
        assert "".join(f"{line}\n" for line in lines) == self.output_of(store.get_ref("model", "a"))

    @rule(delay=st.floats(0.0, 1.5))
    def kill_a_build(self, delay: float) -> None:
        process = start_pipex("build", "-f", str(self.root), "--store", str(self.store_root), "--json", "--force")
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(60)
        # The next command removes what the killed build left (its containers at the next build).
        self.just_built = set()
        api.build(self.root, store=self.store_root, targets=["c"])

    @rule()
    def two_builds_at_once(self) -> None:
        errors: list[BaseException] = []

        def one() -> None:
            try:
                result = api.build(self.root, store=self.store_root)
                assert result.ok
            except BaseException as error:  # collected for the main thread
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors
        self.just_built = set(STEPS)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def count(self) -> None:
        PipexModel.rules_run += 1

    @invariant()
    def plan_is_honest(self) -> None:
        if not (self.root / "pipeline.yaml").exists():
            return
        store = Store.open(self.store_root)
        plan = api.plan(self.root, store=self.store_root)
        for step_plan in plan.steps:
            step = step_plan.step_id
            expected = self.expected(step)
            if step_plan.status.value == "cached":
                assert self.output_of(step_plan.run_id) == expected, f"{step} planned cached with another output"
            ref = store.get_ref("model", step) if "model" in store.workspaces() else None
            if step in self.just_built:
                assert step_plan.status.value == "cached", f"{step} not cached right after a build: {step_plan.reasons}"
            if ref is not None and self.output_of(ref) == expected and step_plan.status.value != "cached":
                # An upstream not cached makes this one pending, and that is honest too.
                assert step_plan.status.value == "pending", f"{step}: ref holds the right output, plan says {step_plan.status}"

    @invariant()
    def store_is_sound_and_clean(self) -> None:
        if not self.store_root.exists():
            return
        report = verify(Store.open(self.store_root))
        assert report.ok, report.problems
        assert containers(self.store_root) == [], "a container was left behind"
        mine = f"-{os.getpid()}."
        left = [n for n in os.listdir(self.store_root / "staging") if mine not in n]
        assert left == [], f"staging left: {left}"

    def teardown(self) -> None:
        remove_containers(self.store_root)
        from pipex.store._fs import rmtree

        rmtree(self.tmp)


def test_random_sequences_keep_every_promise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = iterations("model_steps", 20)
    rules = iterations("model_rules", 200)
    budget = time.monotonic() + iterations("model_seconds", 900)
    monkeypatch.setenv("PIPEX_MODEL_TMP", str(tmp_path))
    PipexModel.rules_run = 0
    while PipexModel.rules_run < rules and time.monotonic() < budget:
        run_state_machine_as_test(
            PipexModel,
            settings=settings(
                max_examples=max(2, rules // steps),
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
    print(f"model test: {PipexModel.rules_run} rules checked")
    assert PipexModel.rules_run >= rules, f"only {PipexModel.rules_run} of {rules} rules ran in the time budget"
    shutil.rmtree(tmp_path, ignore_errors=True)
