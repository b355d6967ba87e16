"""Build events: what a build reports, as it happens, to the console, NDJSON and the build record.

Every kind and its ``data`` fields (camelCase, as in ``--json`` output; the
step id is the event's ``step``):

================== ====================================================================
kind               fields
================== ====================================================================
PIPELINE_START     workspace, steps (ids in plan order)
STEP_STARTING      reason (why it runs), fingerprint
STEP_PHASE         phase (``setup`` / ``run``)
STEP_LOG           stream (``stdout`` / ``stderr``), line  (only with ``--verbose``)
STEP_RETRYING      attempt, reason, delayMs, exitCode
STEP_FINISHED      runId, durationMs, bytes, files, tree
STEP_CACHED        runId, tree, source (``local``, or ``remote``: pulled from the remote cache)
REMOTE_PUSH        run, pushed, objects, bytes, durationMs (a run sent to the remote cache)
STEP_FAILED        runId (None when nothing could be recorded), reason, exitCode,
                   allowFailure, logs (the command to see them), and when the
                   command ran: durationMs, logTail (last lines of stderr, else stdout)
STEP_SKIPPED       reason
IMAGE_PULL         image, status, done (True once the image is ready)
WARNING            message
PIPELINE_FINISHED  workspace, ran, cached, skipped, failed, durationMs, interrupted?,
                   remote? (gets, heads, puts, lists, bytesIn, bytesOut: requests made)
PIPELINE_FAILED    the same, and reason when the engine went away
================== ====================================================================
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

__all__ = ["EventKind", "Event", "EventSink"]


class EventKind(str, Enum):
    """What happened; the NDJSON ``event`` field carries the value."""

    PIPELINE_START = "PIPELINE_START"
    STEP_STARTING = "STEP_STARTING"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_CACHED = "STEP_CACHED"
    STEP_FINISHED = "STEP_FINISHED"
    STEP_FAILED = "STEP_FAILED"
    STEP_RETRYING = "STEP_RETRYING"
    STEP_PHASE = "STEP_PHASE"
    STEP_LOG = "STEP_LOG"
    IMAGE_PULL = "IMAGE_PULL"
    REMOTE_PUSH = "REMOTE_PUSH"
    WARNING = "WARNING"
    PIPELINE_FINISHED = "PIPELINE_FINISHED"
    PIPELINE_FAILED = "PIPELINE_FAILED"


@dataclass(frozen=True)
class Event:
    """One build event; ``data`` holds the kind-specific fields (camelCase keys)."""

    kind: EventKind
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        """Return the event as one NDJSON line (no newline)."""
        doc: dict[str, Any] = {"event": self.kind.value, "time": round(self.time, 3)}
        if self.step is not None:
            doc["step"] = self.step
        doc.update(self.data)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


EventSink = Callable[[Event], None]
