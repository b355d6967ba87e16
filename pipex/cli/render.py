"""Renderers of build events: human lines (rich on a TTY) and NDJSON; terminal-safe output."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any, TextIO

from pipex.events import Event, EventKind, EventSink

__all__ = ["terminal_safe", "TerminalSafeWriter", "JsonRenderer", "ConsoleRenderer", "LiveRenderer", "make_renderer", "format_size", "format_duration"]


# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides
# that reorder what a reader sees ("Trojan source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with control sequences made visible (``\\x1b[2J``), so a step's output cannot drive the terminal."""
    return _UNSAFE.sub(_visible, text)


class TerminalSafeWriter:
    """Writes a step's raw output bytes to a terminal, escaping control sequences (UTF-8 split across chunks is kept)."""

    def __init__(self, out: Any) -> None:
        import codecs

        self._out = out
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, chunk: bytes, *, final: bool = False) -> None:
        """Escape and write ``chunk``; ``final`` flushes a trailing partial character."""
        text = self._decoder.decode(chunk, final=final)
        self._out.write(terminal_safe(text.replace("\r\n", "\n")).encode("utf-8"))
        self._out.flush()

    def flush(self) -> None:
        """Flush the terminal stream."""
        self._out.flush()




class JsonRenderer:
    """Write every event as one JSON line on ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = event.to_json()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def format_duration(ms: float | int | None) -> str:
    """Return milliseconds as ``1.5s`` or ``2m05s`` (empty for None)."""
    if ms is None:
        return ""
    seconds = ms / 1000
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def format_size(n: int | None) -> str:
    """Return a byte count the way people read it: ``512 B``, ``2.0 KiB``, ``1.5 GiB``."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _safe_value(value: Any) -> Any:
    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, list):
        return [_safe_value(v) for v in value]
    return value


class ConsoleRenderer:
    """Human output: one line per finished, cached, skipped or failed step.

    Colours only when the stream is a TTY and ``NO_COLOR`` is unset; step logs
    are shown (prefixed by the step id) only when ``verbose``.
    """

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._verbose = verbose
        self._quiet = quiet
        self._colour = self._stream.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()

    def _paint(self, text: str, colour: str) -> str:
        codes = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "cyan": "36"}
        return f"\x1b[{codes[colour]}m{text}\x1b[0m" if self._colour else text

    def _line(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def __call__(self, event: Event) -> None:
        kind, step = event.kind, event.step
        # Lines, reasons and log tails carry a step's own output: never raw to a terminal.
        data = {key: _safe_value(value) for key, value in event.data.items()}
        if kind is EventKind.STEP_LOG:
            if self._verbose:
                self._line(f"{self._paint(f'[{step}]', 'cyan')} {data.get('line', '')}")
            return
        if kind is EventKind.WARNING:
            self._line(self._paint(f"warning: {data.get('message', '')}", "yellow"))
            return
        if kind is EventKind.STEP_PHASE:
            return
        if kind is EventKind.IMAGE_PULL:
            if not self._quiet and not data.get("done"):
                self._line(self._paint(f"pull    {data.get('image', '')}: {data.get('status', '')}", "dim"))
            return
        if self._quiet and kind not in (EventKind.STEP_FAILED, EventKind.PIPELINE_FAILED):
            return
        if kind is EventKind.STEP_STARTING:
            reason = data.get("reason")
            self._line(f"{self._paint('start ', 'dim')}  {step}" + (f"  ({reason})" if reason else ""))
        elif kind is EventKind.STEP_CACHED:
            where = "remote run" if data.get("source") == "remote" else "run"
            self._line(f"{self._paint('cached', 'dim')}  {step}  ({where} {str(data.get('runId', ''))[:12]})")
        elif kind is EventKind.STEP_FINISHED:
            extra = ", ".join(x for x in (format_duration(data.get("durationMs")), format_size(data.get("bytes"))) if x)
            self._line(f"{self._paint('done  ', 'green')}  {step}  ({extra})")
        elif kind is EventKind.STEP_SKIPPED:
            self._line(f"{self._paint('skip  ', 'yellow')}  {step}  ({data.get('reason', '')})")
        elif kind is EventKind.STEP_RETRYING:
            self._line(
                f"{self._paint('retry ', 'yellow')}  {step}  (attempt {data.get('attempt')} "
                f"failed: {data.get('reason', '')}; next in {format_duration(data.get('delayMs'))})"
            )
        elif kind is EventKind.STEP_FAILED:
            allowed = " (allowed to fail)" if data.get("allowFailure") else ""
            self._line(f"{self._paint('FAILED', 'red')}  {step}  {data.get('reason', '')}{allowed}")
            if data.get("logTail"):
                for line in data["logTail"]:
                    self._line(f"        {self._paint('|', 'dim')} {line}")
            if data.get("logs"):
                self._line(f"        {self._paint('the whole log:', 'dim')} {data['logs']}")
        elif kind is EventKind.PIPELINE_FINISHED:
            self._line(
                self._paint(
                    f"ok: {data.get('ran', 0)} ran, {data.get('cached', 0)} cached, "
                    f"{data.get('skipped', 0)} skipped in {format_duration(data.get('durationMs'))}",
                    "green",
                )
            )
        elif kind is EventKind.PIPELINE_FAILED:
            self._line(
                self._paint(
                    f"failed: {data.get('failed', 0)} failed, {data.get('ran', 0)} ran, "
                    f"{data.get('cached', 0)} cached, {data.get('skipped', 0)} skipped",
                    "red",
                )
            )


class LiveRenderer(ConsoleRenderer):
    """On a terminal: the console lines, plus a live line per running step with its elapsed time."""

    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(sys.stderr, verbose=verbose, quiet=quiet)
        self._console = Console(stderr=True, highlight=False)
        self._running: dict[str, float] = {}
        self._phases: dict[str, str] = {}
        self._pulls: dict[str, str] = {}
        self._live = Live(console=self._console, refresh_per_second=8, transient=True, get_renderable=self._render)
        self._started = False

    def _render(self) -> Any:
        from rich.text import Text

        # Wall-clock times from the events: `pipex attach` replays them later, and elapsed must stay true.
        now = time.time()
        text = Text()
        for image, status in self._pulls.items():
            text.append(f"  pulling {image}: {status}\n", style="dim")
        for step, since in self._running.items():
            phase = self._phases.get(step)
            text.append("  running ", style="cyan")
            text.append(f"{step}{f' ({phase})' if phase == 'setup' else ''}  {now - since:.1f}s\n")
        return text

    def _line(self, text: str) -> None:
        # Printing through the Live console keeps the live lines below the log.
        with self._lock:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind is EventKind.PIPELINE_START and not self._started:
            self._live.start()
            self._started = True
        elif kind is EventKind.STEP_STARTING and event.step:
            self._running[event.step] = event.time
        elif kind in (EventKind.STEP_FINISHED, EventKind.STEP_FAILED) and event.step:
            self._running.pop(event.step, None)
            self._phases.pop(event.step, None)
        elif kind is EventKind.STEP_PHASE and event.step:
            self._phases[event.step] = str(event.data.get("phase"))
        elif kind is EventKind.IMAGE_PULL:
            image = str(event.data.get("image", ""))
            if event.data.get("done"):
                self._pulls.pop(image, None)
            else:
                self._pulls[image] = str(event.data.get("status", ""))
            if self._started:
                self._live.refresh()
            return
        if self._started:
            self._live.refresh()  # the live lines are re-rendered only on refresh
        super().__call__(event)
        if kind in (EventKind.PIPELINE_FINISHED, EventKind.PIPELINE_FAILED):
            self.close()

    def close(self) -> None:
        """Stop the live display (also when a build ends with an error instead of an event)."""
        if self._started:
            self._live.stop()
            self._started = False


def make_renderer(*, json_output: bool, verbose: bool = False, quiet: bool = False) -> EventSink:
    """Return the renderer the CLI flags ask for: NDJSON, a live display on a terminal, or plain lines."""
    if json_output:
        return JsonRenderer()
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
        return LiveRenderer(verbose=verbose, quiet=quiet)
    return ConsoleRenderer(verbose=verbose, quiet=quiet)
