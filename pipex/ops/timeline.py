"""A build's events as a Chrome trace-event JSON (Perfetto, chrome://tracing, speedscope).

Tracks (``tid``): 0 "build" holds the whole build, cache hits and skips as
instants; 1..N are parallel slots, a step taking the lowest free slot when it
starts, so the picture shows how well ``-j`` was used; image pulls get their
own track. Times are microseconds since PIPELINE_START.

Inside a step's span, its setup and run phases (STEP_PHASE events) are
nested spans on the same track; retries appear as instants in the step's slot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipex.errors import UsageError
from pipex.events import Event, EventKind

__all__ = ["trace_events", "write_trace", "check_trace_path", "to_json"]

_BUILD_TID = 0
_PULL_TID = 10_000
_PID = 1


def _us(t: float, origin: float) -> int:
    return max(0, int(round((t - origin) * 1_000_000)))


def trace_events(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The trace events (``traceEvents`` list) of one build's events."""
    events = list(events)
    if not events:
        return []
    start = next((e for e in events if e.kind is EventKind.PIPELINE_START), events[0])
    origin = start.time
    workspace = start.data.get("workspace", "")
    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": _PID, "tid": 0, "args": {"name": f"pipex build {workspace}".strip()}},
        {"name": "thread_name", "ph": "M", "pid": _PID, "tid": _BUILD_TID, "args": {"name": "build (cache hits, skips)"}},
    ]
    free: list[int] = []
    slots_made = 0
    running: dict[str, tuple[int, float, dict[str, Any]]] = {}
    phases: dict[str, tuple[str, float]] = {}
    pulls: dict[str, float] = {}
    end = events[-1].time

    def instant(name: str, event: Event, tid: int, cat: str, args: dict[str, Any]) -> None:
        out.append({"name": name, "cat": cat, "ph": "i", "s": "t", "ts": _us(event.time, origin), "pid": _PID, "tid": tid, "args": args})

    def close_phase(step: str, t: float) -> None:
        if step not in phases or step not in running:
            return
        phase, began = phases.pop(step)
        out.append(
            {
                "name": phase,
                "cat": "phase",
                "ph": "X",
                "ts": _us(began, origin),
                "dur": max(1, _us(t, origin) - _us(began, origin)),
                "pid": _PID,
                "tid": running[step][0],
            }
        )

    def close(step: str, t: float, outcome: str, args: dict[str, Any]) -> None:
        close_phase(step, t)
        slot, began, start_args = running.pop(step)
        out.append(
            {
                "name": step,
                "cat": outcome,
                "ph": "X",
                "ts": _us(began, origin),
                "dur": max(1, _us(t, origin) - _us(began, origin)),
                "pid": _PID,
                "tid": slot,
                "args": {**start_args, **args, "outcome": outcome},
            }
        )
        free.append(slot)
        free.sort()

    for event in events:
        kind, step, data = event.kind, event.step, event.data
        if kind is EventKind.STEP_STARTING and step:
            if free:
                slot = free.pop(0)
            else:
                slots_made += 1
                slot = slots_made
                out.append({"name": "thread_name", "ph": "M", "pid": _PID, "tid": slot, "args": {"name": f"slot {slot}"}})
            running[step] = (slot, event.time, {k: data[k] for k in ("reason", "fingerprint") if k in data})
        elif kind is EventKind.STEP_PHASE and step in running:
            close_phase(step, event.time)
            phases[step] = (str(data.get("phase")), event.time)
        elif kind is EventKind.STEP_FINISHED and step in running:
            close(step, event.time, "ran", {k: data[k] for k in ("runId", "bytes", "files") if k in data})
        elif kind is EventKind.STEP_FAILED and step in running:
            close(step, event.time, "failed", {k: data[k] for k in ("runId", "exitCode", "reason") if k in data})
        elif kind is EventKind.STEP_SKIPPED and step in running:
            close(step, event.time, "interrupted", {"reason": data.get("reason")})
        elif kind is EventKind.STEP_RETRYING and step in running:
            instant(f"{step}: attempt {data.get('attempt')} failed", event, running[step][0], "retry", dict(data))
        elif kind is EventKind.STEP_CACHED and step:
            instant(f"{step} (cached)", event, _BUILD_TID, "cached", {k: data[k] for k in ("runId", "tree") if k in data})
        elif kind is EventKind.STEP_SKIPPED and step:
            instant(f"{step} (skipped)", event, _BUILD_TID, "skipped", {"reason": data.get("reason")})
        elif kind is EventKind.IMAGE_PULL:
            image = str(data.get("image", ""))
            if data.get("done"):
                if image in pulls:
                    began = pulls.pop(image)
                    out.append(
                        {"name": f"pull {image}", "cat": "image", "ph": "X", "ts": _us(began, origin),
                         "dur": max(1, _us(event.time, origin) - _us(began, origin)), "pid": _PID, "tid": _PULL_TID}
                    )
            else:
                pulls.setdefault(image, event.time)
        elif kind is EventKind.WARNING:
            instant("warning", event, _BUILD_TID, "warning", {"message": data.get("message")})
    for step in list(running):
        close(step, end, "unfinished", {})
    if any(e.get("tid") == _PULL_TID for e in out):
        out.append({"name": "thread_name", "ph": "M", "pid": _PID, "tid": _PULL_TID, "args": {"name": "image pulls"}})
    summary = next((e for e in reversed(events) if e.kind in (EventKind.PIPELINE_FINISHED, EventKind.PIPELINE_FAILED)), None)
    out.append(
        {
            "name": f"build {workspace}".strip(),
            "cat": "build",
            "ph": "X",
            "ts": 0,
            "dur": max(1, _us(end, origin)),
            "pid": _PID,
            "tid": _BUILD_TID,
            "args": dict(summary.data) if summary else {},
        }
    )
    return out


def to_json(events: Iterable[Event]) -> str:
    """The whole trace document as JSON text."""
    return json.dumps({"traceEvents": trace_events(events), "displayTimeUnit": "ms"}, ensure_ascii=False)


def check_trace_path(path: Path | str) -> None:
    """UsageError now, before any work, if a trace cannot be written at ``path`` (no such dir, not writable)."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"cannot write the trace to {target}: it is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write the trace to {target}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"cannot write the trace to {target}: permission denied")


def write_trace(events: Iterable[Event], path: Path | str) -> None:
    """Write the trace of ``events`` to ``path`` (open it in https://ui.perfetto.dev); UsageError if it cannot."""
    try:
        Path(path).write_text(to_json(events) + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write the trace to {path}: {error.strerror or error}") from None
