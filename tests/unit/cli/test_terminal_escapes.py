"""A step's output never drives the user's terminal (issue 10, item 8): failure tails, --verbose, attach, logs, cat."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from conftest import Seeder

from pipex.events import Event, EventKind

from pipex.cli.render import ConsoleRenderer

HOSTILE = "before\x1b[2J\x1b]0;owned\x07\x9b31m\u202eafter"


def test_the_console_renderer_shows_control_sequences_instead_of_sending_them() -> None:
    out = io.StringIO()
    render = ConsoleRenderer(out, verbose=True)
    render(Event(EventKind.STEP_LOG, "s", {"stream": "stdout", "line": HOSTILE}))
    render(Event(EventKind.STEP_FAILED, "s", {"reason": HOSTILE, "logTail": [HOSTILE]}))
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text
    assert text.count("\\x1b[2J") == 3 and "\\u202e" in text


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run ``python -m pipex ARGS`` with stdout on a pseudo-terminal; return what reached it."""
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pipex", *args], stdout=child, stderr=subprocess.DEVNULL, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(main)
    return b"".join(chunks)


def test_logs_and_cat_escape_control_sequences_on_a_terminal_and_keep_bytes_in_a_pipe(seed: Seeder, tmp_path: Path) -> None:
    seed.run("ws", "s", {"out.txt": HOSTILE}, stdout=HOSTILE + "\n")
    env = dict(os.environ)
    for args in (["logs", "ws", "s", "--stream", "stdout"], ["cat", "ws", "s", "out.txt"]):
        shown = _on_a_terminal(args, env)
        assert b"\x1b" not in shown and b"\x07" not in shown, (args, shown)
        assert b"\\x1b[2J" in shown, (args, shown)
        piped = subprocess.run([sys.executable, "-m", "pipex", *args], capture_output=True, env=env, timeout=30)
        assert HOSTILE.encode() in piped.stdout, "a pipe must get the bytes exactly"
