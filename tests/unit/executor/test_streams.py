"""A step's output streams without a daemon: multiplexed frames, timestamps, log files and on_log lines."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from pipex.errors import StoreError
from pipex.executor.base import Invocation
from pipex.executor.docker.streams import LogSink, Pump, log_entries, split_timestamp


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def _invocation(tmp_path: Path, on_log: Any = None) -> Invocation:
    return Invocation(
        step_id="s",
        image="sha256:" + "0" * 64,
        cmd=("true",),
        env={},
        output_dir=tmp_path / "out",
        stdout_path=tmp_path / "logs" / "stdout.log",
        stderr_path=tmp_path / "logs" / "stderr.log",
        on_log=on_log,
    )


class _Response:
    """What a followed logs request looks like to the pump: a ``raw`` body and ``close``."""

    def __init__(self, body: bytes) -> None:
        self.raw = io.BytesIO(body)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_log_entries_reads_frames_and_stops_at_a_cut_frame() -> None:
    body = _frame(1, b"out\n") + _frame(2, b"err\n") + _frame(1, b"x" * 200_000) + _frame(1, b"cut")[:-1]
    assert list(log_entries(io.BytesIO(body))) == [(1, b"out\n"), (2, b"err\n"), (1, b"x" * 200_000)]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (b"2026-01-02T03:04:05.123456789Z data", (1767323045123456789, b"data")),
        (b"2026-01-02T03:04:05Z data", (1767323045000000000, b"data")),
        (b"2026-01-02T04:04:05.5+01:00 x y", (1767323045500000000, b"x y")),
        (b"not a stamp at all", (-1, b"not a stamp at all")),
    ],
)
def test_split_timestamp(entry: bytes, expected: tuple[int, bytes]) -> None:
    assert split_timestamp(entry) == expected


def test_log_sink_writes_files_as_it_goes_and_feeds_whole_lines(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    inv = _invocation(tmp_path, on_log=lambda stream, line: lines.append((stream, line)))
    with LogSink(inv) as sink:
        sink.write(1, b"hel")
        assert inv.stdout_path.read_bytes() == b"hel"  # flushed at once: `logs --follow` sees it
        sink.write(1, b"lo\nwor")
        sink.write(2, b"oops\n")
        sink.write(1, b"ld")
    assert inv.stdout_path.read_bytes() == b"hello\nworld"
    assert inv.stderr_path.read_bytes() == b"oops\n"
    assert lines == [("stdout", "hello"), ("stderr", "oops"), ("stdout", "world")]


def test_a_line_longer_than_a_mebibyte_is_cut_for_display_but_kept_whole_in_the_file(tmp_path: Path) -> None:
    lengths: list[int] = []
    inv = _invocation(tmp_path, on_log=lambda stream, line: lengths.append(len(line)))
    with LogSink(inv) as sink:
        for _ in range(3):
            sink.write(1, b"y" * 700_000)
    assert sum(lengths) == 2_100_000 and max(lengths) <= 1_400_000
    assert inv.stdout_path.stat().st_size == 2_100_000


def test_a_broken_display_never_fails_the_step(tmp_path: Path) -> None:
    def broken(stream: str, line: str) -> None:
        raise RuntimeError("terminal gone")

    inv = _invocation(tmp_path, on_log=broken)
    with LogSink(inv) as sink:
        sink.write(1, b"a\nb\n")
    assert inv.stdout_path.read_bytes() == b"a\nb\n"


def test_logs_that_cannot_be_written_are_one_line_store_error(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the directory belongs")
    with pytest.raises(StoreError, match="step 's': cannot write its logs"):
        LogSink(_invocation(tmp_path)).__enter__()


def test_the_pump_delivers_a_followed_log_and_marks_each_stream(tmp_path: Path) -> None:
    stamp = b"2026-01-02T03:04:05.000000001Z "
    later = b"2026-01-02T03:04:06.000000000Z "
    body = _frame(1, stamp + b"a\n") + _frame(1, stamp + b"b\n") + _frame(2, later + b"c\n")
    response = _Response(body)
    inv = _invocation(tmp_path)
    with LogSink(inv) as sink:
        pump = Pump(sink, opener=lambda: (None, response))
        assert pump.done.wait(5)
        pump.close()
    assert inv.stdout_path.read_bytes() == b"a\nb\n" and inv.stderr_path.read_bytes() == b"c\n"
    # Two entries share stdout's last stamp: a catch-up must skip both, and stderr's one.
    assert pump.marks == {1: (1767323045000000001, 2), 2: (1767323046000000000, 1)}
    assert pump.timestamped and response.closed


def test_a_pump_whose_stream_cannot_open_hands_the_error_to_the_step(tmp_path: Path) -> None:
    def refuse() -> tuple[Any, Any]:
        raise StoreError("engine said no")

    pump = Pump(None, opener=refuse)
    assert pump.done.wait(5)
    assert isinstance(pump.open_error, StoreError) and not pump.timestamped


def test_a_full_disk_while_pumping_keeps_draining_the_stream(tmp_path: Path) -> None:
    class FullSink:
        calls = 0

        def write(self, stream: int, data: bytes) -> None:
            FullSink.calls += 1
            raise OSError(28, "No space left on device")

    body = b"".join(_frame(1, b"2026-01-02T03:04:05Z x\n") for _ in range(50))
    pump = Pump(FullSink(), opener=lambda: (None, _Response(body)))  # type: ignore[arg-type]
    assert pump.done.wait(5)
    assert isinstance(pump.error, OSError) and FullSink.calls == 1  # the rest was read, not written


def test_pump_close_before_the_stream_opened_returns(tmp_path: Path) -> None:
    gate = threading.Event()

    def slow() -> tuple[Any, Any]:
        gate.wait(10)
        return None, _Response(b"")

    pump = Pump(None, opener=slow)
    gate.set()
    pump.close()
    assert pump.done.wait(5)
