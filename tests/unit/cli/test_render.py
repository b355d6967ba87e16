"""Event renderers: NDJSON lines and plain console lines."""

from __future__ import annotations

import io
import json

from pipex.events import Event, EventKind

from pipex.cli.render import ConsoleRenderer, JsonRenderer


def test_json_renderer_writes_one_object_per_line_with_camel_case_fields() -> None:
    out = io.StringIO()
    render = JsonRenderer(out)
    render(Event(EventKind.STEP_FINISHED, "a", {"runId": "r1", "durationMs": 12, "bytes": 4}, time=1.5))
    render(Event(EventKind.PIPELINE_FINISHED, data={"ran": 1}, time=2.0))
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"event": "STEP_FINISHED", "time": 1.5, "step": "a", "runId": "r1", "durationMs": 12, "bytes": 4},
        {"event": "PIPELINE_FINISHED", "time": 2.0, "ran": 1},
    ]


def test_console_renderer_plain_lines_without_a_tty() -> None:
    out = io.StringIO()
    render = ConsoleRenderer(out)
    render(Event(EventKind.STEP_FINISHED, "stats", {"durationMs": 1500, "bytes": 2048}))
    render(Event(EventKind.STEP_FAILED, "report", {"reason": "exit code 3", "logTail": ["boom"]}))
    render(Event(EventKind.STEP_LOG, "stats", {"line": "hidden unless verbose"}))
    text = out.getvalue()
    assert "done    stats  (1.5s, 2.0 KiB)" in text
    assert "FAILED  report  exit code 3" in text
    assert "| boom" in text
    assert "hidden" not in text
    assert "\x1b[" not in text


def test_verbose_console_prefixes_step_logs_and_quiet_shows_only_failures() -> None:
    out = io.StringIO()
    ConsoleRenderer(out, verbose=True)(Event(EventKind.STEP_LOG, "stats", {"line": "42 lines"}))
    assert out.getvalue() == "[stats] 42 lines\n"
    quiet = io.StringIO()
    render = ConsoleRenderer(quiet, quiet=True)
    render(Event(EventKind.STEP_FINISHED, "a", {"durationMs": 1}))
    render(Event(EventKind.STEP_FAILED, "b", {"reason": "exit code 1"}))
    assert quiet.getvalue().splitlines() == ["FAILED  b  exit code 1"]
