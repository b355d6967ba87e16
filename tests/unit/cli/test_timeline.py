"""Chrome trace of a build: parallel slots, cache hits, retries, pulls, unfinished steps."""

from __future__ import annotations

import json

from pipex.events import Event, EventKind
from pipex.ops.timeline import to_json, trace_events

T0 = 1000.0


def _e(kind: EventKind, at: float, step: str | None = None, **data) -> Event:
    return Event(kind, step, data, T0 + at)


def _spans(events):
    return [(e["name"], e["tid"], e["ts"], e["dur"], e["cat"]) for e in trace_events(events) if e["ph"] == "X"]


def test_overlapping_steps_take_the_lowest_free_slot() -> None:
    events = [
        _e(EventKind.PIPELINE_START, 0, workspace="w", steps=["a", "b", "c"]),
        _e(EventKind.STEP_STARTING, 0.0, "a"),
        _e(EventKind.STEP_STARTING, 0.5, "b"),
        _e(EventKind.STEP_FINISHED, 1.0, "a", runId="r"),
        _e(EventKind.STEP_STARTING, 1.5, "c"),
        _e(EventKind.STEP_FAILED, 2.0, "b", exitCode=3),
        _e(EventKind.STEP_FINISHED, 3.0, "c"),
        _e(EventKind.PIPELINE_FAILED, 3.0, workspace="w", failed=1),
    ]
    assert _spans(events) == [
        ("a", 1, 0, 1_000_000, "ran"),
        ("b", 2, 500_000, 1_500_000, "failed"),
        ("c", 1, 1_500_000, 1_500_000, "ran"),
        ("build w", 0, 0, 3_000_000, "build"),
    ]
    names = {e["tid"]: e["args"]["name"] for e in trace_events(events) if e["name"] == "thread_name"}
    assert names == {0: "build (cache hits, skips)", 1: "slot 1", 2: "slot 2"}


def test_cache_hits_skips_retries_and_pulls() -> None:
    events = [
        _e(EventKind.PIPELINE_START, 0, workspace="w"),
        _e(EventKind.STEP_CACHED, 0.1, "a", runId="r1"),
        _e(EventKind.IMAGE_PULL, 0.1, image="busybox", status="pulling"),
        _e(EventKind.IMAGE_PULL, 0.6, image="busybox", status="ready", done=True),
        _e(EventKind.STEP_STARTING, 0.7, "b"),
        _e(EventKind.STEP_RETRYING, 0.8, "b", attempt=1),
        _e(EventKind.STEP_SKIPPED, 0.9, "c", reason="condition false"),
        _e(EventKind.PIPELINE_FAILED, 1.0, workspace="w", interrupted=True),
    ]
    trace = trace_events(events)
    instants = [(e["name"], e["tid"]) for e in trace if e["ph"] == "i"]
    assert instants == [("a (cached)", 0), ("b: attempt 1 failed", 1), ("c (skipped)", 0)]
    spans = _spans(events)
    assert ("pull busybox", 10_000, 100_000, 500_000, "image") in spans
    assert ("b", 1, 700_000, 300_000, "unfinished") in spans  # the build ended while it ran


def test_trace_document_is_valid_json_for_no_events() -> None:
    assert json.loads(to_json([])) == {"traceEvents": [], "displayTimeUnit": "ms"}


def test_setup_and_run_phases_are_nested_spans_in_the_steps_slot() -> None:
    events = [
        _e(EventKind.PIPELINE_START, 0, workspace="w", steps=["a"]),
        _e(EventKind.STEP_STARTING, 0.0, "a"),
        _e(EventKind.STEP_PHASE, 0.1, "a", phase="setup"),
        _e(EventKind.STEP_PHASE, 1.1, "a", phase="run"),
        _e(EventKind.STEP_FINISHED, 2.0, "a", runId="r"),
        _e(EventKind.PIPELINE_FINISHED, 2.0, workspace="w"),
    ]
    assert _spans(events) == [
        ("setup", 1, 100_000, 1_000_000, "phase"),
        ("run", 1, 1_100_000, 900_000, "phase"),
        ("a", 1, 0, 2_000_000, "ran"),
        ("build w", 0, 0, 2_000_000, "build"),
    ]
