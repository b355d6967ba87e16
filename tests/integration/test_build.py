"""pipex build end to end on the real engine: caching, invalidation, scheduling, failures."""

from __future__ import annotations

import hashlib
import time

import pytest

from pipex.events import EventKind

from .build_helpers import BUSYBOX, Project

pytestmark = pytest.mark.docker


CHAIN = f"""\
id: chain
steps:
  - id: a
    image: {BUSYBOX}
    cmd: echo one > /output/a.txt
  - id: b
    image: {BUSYBOX}
    inputs: [{{step: a}}]
    cmd: cat /input/a/a.txt > /output/b.txt; echo two >> /output/b.txt
"""


def test_second_build_is_all_cached_and_outputs_flow_between_steps(project: Project) -> None:
    project.write(CHAIN)
    first = project.build()
    assert first.ok
    assert project.outcomes(first) == {"a": "succeeded", "b": "succeeded"}
    assert project.output(first, "b", "b.txt") == "one\ntwo\n"
    second = project.build()
    assert project.outcomes(second) == {"a": "cached", "b": "cached"}
    assert [r.run_id for r in second.results] == [r.run_id for r in first.results]


@pytest.mark.parametrize("offline", [True, False])
def test_all_cached_build_succeeds_without_docker(project: Project, monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    project.write(CHAIN)
    assert project.build().ok
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = project.build(offline=offline)
    assert project.outcomes(result) == {"a": "cached", "b": "cached"}
    warnings = [e.data["message"] for e in project.kinds(EventKind.WARNING)]
    # Online, the tag re-check is tried once, fails, and falls back to recorded ids.
    assert bool(warnings) is (not offline)


def test_changed_command_reruns_step_and_dependants(project: Project) -> None:
    project.write(CHAIN)
    project.build()
    project.write(CHAIN.replace("echo one", "echo uno"))
    result = project.build()
    assert project.outcomes(result) == {"a": "succeeded", "b": "succeeded"}
    assert project.output(result, "b", "b.txt") == "uno\ntwo\n"


def test_rerun_with_identical_output_leaves_dependants_cached(project: Project) -> None:
    project.write(CHAIN)
    project.build()
    # Another command, same bytes out: b's inputs (tree ids) are unchanged.
    project.write(CHAIN.replace("echo one > /output/a.txt", "printf 'one\\n' > /output/a.txt"))
    result = project.build()
    assert project.outcomes(result) == {"a": "succeeded", "b": "cached"}


def test_edit_to_source_file_reruns_step(project: Project) -> None:
    pipeline = f"""\
    id: src
    steps:
      - id: read
        image: {BUSYBOX}
        sources: [{{host: data, container: /data}}]
        mounts: [{{host: conf, container: /conf}}]
        cmd: cat /data/in.txt /conf/c.txt > /output/out.txt
    """
    project.write(pipeline, {"data/in.txt": "v1\n", "conf/c.txt": "c1\n"})
    assert project.output(project.build(), "read", "out.txt") == "v1\nc1\n"
    assert project.outcomes(project.build()) == {"read": "cached"}
    (project.root / "data/in.txt").write_text("v2\n")
    assert project.output(project.build(), "read", "out.txt") == "v2\nc1\n"
    (project.root / "conf/c.txt").write_text("c2\n")
    result = project.build()
    assert project.outcomes(result) == {"read": "succeeded"}
    assert project.output(result, "read", "out.txt") == "v2\nc2\n"


def test_targets_build_only_what_they_need(project: Project) -> None:
    pipeline = f"""\
    id: targets
    steps:
      - {{id: base, image: {BUSYBOX}, cmd: echo base > /output/x}}
      - {{id: left, image: {BUSYBOX}, inputs: [{{step: base}}], cmd: echo l > /output/x}}
      - {{id: right, image: {BUSYBOX}, cmd: echo r > /output/x}}
    """
    project.write(pipeline)
    result = project.build("left")
    assert project.outcomes(result) == {"base": "succeeded", "left": "succeeded"}
    result = project.build("r*")
    assert project.outcomes(result) == {"right": "succeeded"}


def test_force_reruns_only_named_steps(project: Project) -> None:
    project.write(CHAIN)
    project.build()
    result = project.build(force="b")
    assert project.outcomes(result) == {"a": "cached", "b": "succeeded"}
    result = project.build(force=True)
    assert project.outcomes(result) == {"a": "succeeded", "b": "succeeded"}


def test_independent_steps_run_in_parallel(project: Project) -> None:
    steps = "\n".join(f"  - {{id: s{i}, image: {BUSYBOX}, cmd: sleep 2; echo {i} > /output/x}}" for i in range(4))
    project.write(f"id: par\nsteps:\n{steps}\n")
    started = time.monotonic()
    result = project.build(concurrency=4)
    elapsed = time.monotonic() - started
    assert result.ok
    assert elapsed < 7, f"4 x 2 s steps with -j 4 took {elapsed:.1f}s: they did not overlap"


FAILING = f"""\
id: failing
steps:
  - {{id: bad, image: {BUSYBOX}, cmd: echo oops >&2; exit 3}}
  - {{id: after_bad, image: {BUSYBOX}, inputs: [{{step: bad}}], cmd: echo x > /output/x}}
  - {{id: slow_ok, image: {BUSYBOX}, cmd: sleep 1; echo ok > /output/x}}
"""


def test_failure_stops_the_build_and_dependants_are_skipped(project: Project) -> None:
    project.write(FAILING)
    result = project.build(concurrency=1)
    assert not result.ok
    outcomes = project.outcomes(result)
    assert outcomes["bad"] == "failed"
    assert outcomes["after_bad"] == "skipped"
    failed = project.kinds(EventKind.STEP_FAILED)[0]
    assert failed.data["exitCode"] == 3
    assert "oops" in failed.data["logTail"]


def test_keep_going_builds_independent_branches(project: Project) -> None:
    project.write(FAILING)
    result = project.build(concurrency=1, keep_going=True)
    outcomes = project.outcomes(result)
    assert outcomes == {"bad": "failed", "after_bad": "skipped", "slow_ok": "succeeded"}
    # A failure is never cached: the next build runs it again.
    again = project.build(keep_going=True)
    assert project.outcomes(again)["bad"] == "failed"
    assert project.outcomes(again)["slow_ok"] == "cached"


def test_allow_failure_lets_dependants_run_and_is_not_cached(project: Project) -> None:
    pipeline = f"""\
    id: allowed
    steps:
      - {{id: flaky, image: {BUSYBOX}, allowFailure: true, cmd: echo partial > /output/p; exit 1}}
      - {{id: next, image: {BUSYBOX}, inputs: [{{step: flaky}}], cmd: cat /input/flaky/p > /output/n}}
    """
    project.write(pipeline)
    result = project.build()
    assert result.ok
    assert project.outcomes(result) == {"flaky": "failed", "next": "succeeded"}
    assert project.output(result, "next", "n") == "partial\n"
    assert project.outcome(project.build(), "flaky") == "failed"


def test_optional_input_does_not_block(project: Project) -> None:
    pipeline = f"""\
    id: optional
    steps:
      - {{id: maybe, image: {BUSYBOX}, if: env.PIPEX_TEST_NEVER_SET, cmd: echo m > /output/m}}
      - id: uses
        image: {BUSYBOX}
        inputs: [{{step: maybe, optional: true}}]
        cmd: if [ -e /input/maybe ]; then echo present; else echo absent; fi > /output/u
    """
    project.write(pipeline)
    result = project.build()
    assert project.outcomes(result) == {"maybe": "skipped", "uses": "succeeded"}
    assert project.output(result, "uses", "u") == "absent\n"


def test_required_input_skipped_by_condition_skips_dependant(project: Project) -> None:
    pipeline = f"""\
    id: cond
    steps:
      - {{id: gated, image: {BUSYBOX}, if: env.PIPEX_TEST_NEVER_SET == "yes", cmd: echo g > /output/g}}
      - {{id: after, image: {BUSYBOX}, inputs: [{{step: gated}}], cmd: echo a > /output/a}}
    """
    project.write(pipeline)
    result = project.build()
    assert result.ok
    assert project.outcomes(result) == {"gated": "skipped", "after": "skipped"}


def test_copy_to_output_starts_from_the_input(project: Project) -> None:
    pipeline = f"""\
    id: copy
    steps:
      - {{id: a, image: {BUSYBOX}, cmd: mkdir /output/d && echo x > /output/d/x}}
      - {{id: b, image: {BUSYBOX}, inputs: [{{step: a, copyToOutput: true}}], cmd: echo y > /output/y}}
    """
    project.write(pipeline)
    result = project.build()
    assert project.output(result, "b", "d/x") == "x\n"
    assert project.output(result, "b", "y") == "y\n"
    # The copy is private: writing into it never touched the store's objects of a.
    assert project.output(result, "a", "d/x") == "x\n"


def test_timeout_fails_the_step(project: Project) -> None:
    pipeline = f"""\
    id: timeout
    steps:
      - {{id: slow, image: {BUSYBOX}, timeoutSec: 1, cmd: sleep 30}}
    """
    project.write(pipeline)
    started = time.monotonic()
    result = project.build()
    assert time.monotonic() - started < 20
    assert not result.ok
    failed = project.kinds(EventKind.STEP_FAILED)[0]
    assert failed.data["exitCode"] == 124
    assert "timed out after 1s" in failed.data["reason"]


def test_retries_rerun_a_failing_step_and_keep_each_attempts_logs(project: Project) -> None:
    pipeline = f"""\
    id: retry
    steps:
      - id: flaky
        image: {BUSYBOX}
        retries: 2
        retryDelayMs: 50
        caches: [{{name: counter, path: /cache}}]
        cmd: n=$(cat /cache/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /cache/n; echo attempt $n; [ $n -ge 3 ] && echo done > /output/x
    """
    project.write(pipeline)
    result = project.build()
    assert project.outcomes(result) == {"flaky": "succeeded"}
    assert len(project.kinds(EventKind.STEP_RETRYING)) == 2
    run_dir = project.store / "runs" / result.results[0].run_id
    assert (run_dir / "stdout.log").read_text() == "attempt 3\n"
    assert (run_dir / "attempt-1.stdout.log").read_text() == "attempt 1\n"
    assert project.meta(result, "flaky")["attempts"] == 3


def test_host_env_is_not_leaked_and_declared_env_is_passed(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPEX_TEST_SECRET_HOST_VAR", "leak")
    pipeline = f"""\
    id: envs
    steps:
      - id: e
        image: {BUSYBOX}
        env: {{GREETING: hello}}
        cmd: env > /output/env.txt
    """
    project.write(pipeline)
    text = project.output(project.build(), "e", "env.txt")
    assert "GREETING=hello" in text
    assert "PIPEX_TEST_SECRET_HOST_VAR" not in text


def test_secrets_are_files_and_never_recorded(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPEX_TEST_TOKEN", "s3cr3t-value")
    pipeline = f"""\
    id: secrets
    steps:
      - id: s
        image: {BUSYBOX}
        secrets: [{{name: token, env: PIPEX_TEST_TOKEN}}]
        cmd: wc -c < /run/secrets/token > /output/size && md5sum < /run/secrets/token > /output/md5 && env
    """
    project.write(pipeline)
    result = project.build()
    assert project.outcomes(result) == {"s": "succeeded"}
    assert project.output(result, "s", "size").strip() == "12"
    assert project.output(result, "s", "md5").split()[0] == hashlib.md5(b"s3cr3t-value").hexdigest()
    run_dir = project.store / "runs" / result.results[0].run_id
    for path in run_dir.iterdir():
        assert "s3cr3t-value" not in path.read_text(errors="replace"), path.name
    assert all("s3cr3t-value" not in e.to_json() for e in project.events)


def test_same_fingerprint_in_two_workspaces_is_reused(project: Project) -> None:
    project.write(CHAIN)
    first = project.build(workspace="one")
    second = project.build(workspace="two")
    assert project.outcomes(second) == {"a": "cached", "b": "cached"}
    assert [r.run_id for r in first.results] == [r.run_id for r in second.results]


def test_two_inputs_with_identical_output_are_both_mounted(project: Project) -> None:
    pipeline = f"""\
    id: twins
    steps:
      - {{id: a, image: {BUSYBOX}, cmd: echo same > /output/f}}
      - {{id: b, image: {BUSYBOX}, cmd: echo same > /output/f}}
      - {{id: c, image: {BUSYBOX}, inputs: [{{step: a}}, {{step: b}}], cmd: cat /input/a/f /input/b/f > /output/both}}
    """
    project.write(pipeline)
    result = project.build()
    assert result.ok, [e.data for e in project.kinds(EventKind.STEP_FAILED)]
    assert project.output(result, "c", "both") == "same\nsame\n"


def test_output_link_leaving_the_output_fails_the_step_and_keeps_its_logs(project: Project) -> None:
    pipeline = f"""\
    id: escape
    steps:
      - {{id: sneaky, image: {BUSYBOX}, cmd: echo trying; ln -s /etc/passwd /output/passwd}}
    """
    project.write(pipeline)
    result = project.build()
    assert not result.ok
    failed = project.kinds(EventKind.STEP_FAILED)[0]
    assert failed.data["reason"].startswith("output refused:")
    assert "passwd" in failed.data["reason"]
    run_dir = project.store / "runs" / result.results[0].run_id
    assert (run_dir / "stdout.log").read_text() == "trying\n"


def test_phase_events_mark_setup_then_run(project: Project) -> None:
    pipeline = f"""\
    id: phases
    steps:
      - id: s
        image: {BUSYBOX}
        setup: {{cmd: echo setting up > /output/setup}}
        cmd: echo running > /output/run
      - {{id: plain, image: {BUSYBOX}, cmd: echo p > /output/p}}
    """
    project.write(pipeline)
    result = project.build()
    assert result.ok
    phases = [(e.step, e.data["phase"]) for e in project.kinds(EventKind.STEP_PHASE)]
    assert [p for p in phases if p[0] == "s"] == [("s", "setup"), ("s", "run")]
    assert [p for p in phases if p[0] == "plain"] == [("plain", "run")]
