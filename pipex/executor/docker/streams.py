"""A step's output streams: the engine's multiplexed frames -> log files (as they come) and ``on_log`` lines.

Memory stays bounded whatever the output size: frames are written chunk by
chunk, lines longer than ``_MAX_LINE`` are cut for ``on_log``, and the
follow's catch-up keeps one mark per stream.
"""

from __future__ import annotations

import re
import socket as socketlib
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

from pipex.errors import StoreError
from pipex.executor.base import Invocation
from pipex.executor.docker.engine import mapped_errors

__all__ = ["LogSink", "Pump", "log_entries", "split_timestamp", "follow_output", "catch_up", "disable_timeout", "shutdown_socket"]

_MAX_LINE = 1 << 20  # an on_log line longer than this is cut, so memory stays bounded
_READ_CHUNK = 64 * 1024
_UNSEEN_STREAM_SLACK_NS = 1_000_000_000  # a stream the follow never saw: re-read from this long before the other's mark


class LogSink:
    """Appends a step's output to its log files as it comes and feeds ``on_log`` line by line."""

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._on_log = inv.on_log
        self._files: dict[int, IO[bytes]] = {}
        self._partial: dict[int, bytes] = {1: b"", 2: b""}

    def __enter__(self) -> LogSink:
        try:
            self._inv.stdout_path.parent.mkdir(parents=True, exist_ok=True)
            self._inv.stderr_path.parent.mkdir(parents=True, exist_ok=True)
            self._files = {1: open(self._inv.stdout_path, "ab"), 2: open(self._inv.stderr_path, "ab")}
        except OSError as error:
            msg = f"step '{self._inv.step_id}': cannot write its logs: {error.filename}: {error.strerror}"
            raise StoreError(msg) from None
        return self

    def write(self, stream: int, data: bytes) -> None:
        """Append a chunk of stream 1 (stdout) or 2 (stderr)."""
        stream = 2 if stream == 2 else 1
        handle = self._files[stream]
        handle.write(data)
        handle.flush()  # so the file grows while the step runs
        if self._on_log is None:
            return
        buffered = self._partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            self._emit(stream, line)
        if len(rest) > _MAX_LINE:
            self._emit(stream, rest)
            rest = b""
        self._partial[stream] = rest

    def _emit(self, stream: int, line: bytes) -> None:
        if self._on_log is None:
            return
        try:
            self._on_log("stderr" if stream == 2 else "stdout", line.decode("utf-8", "replace"))
        except Exception:  # NOTE: a broken display must not fail the step; the files still get everything
            self._on_log = None

    def __exit__(self, *exc: object) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._emit(stream, rest)
        failed: OSError | None = None
        for handle in self._files.values():
            try:
                handle.close()
            except OSError as error:  # the last buffered bytes did not fit: a full disk
                failed = failed or error
        if failed is not None and exc[0] is None:
            msg = f"step '{self._inv.step_id}': cannot write its logs: {failed.strerror}"
            raise StoreError(msg) from None


class Pump:
    """Reads a multiplexed output stream on a thread into a sink; ``done`` is set at its end.

    Two sources: a hijacked exec socket (``sock``), or the HTTP response of a
    followed ``logs`` request (``response``, read through urllib3 so chunked
    encoding is undone).
    """

    def __init__(
        self,
        sink: LogSink | None,
        *,
        sock: Any = None,
        response: Any = None,
        opener: Callable[[], tuple[Any, Any]] | None = None,
    ) -> None:
        self._sock = sock
        self._response = response
        # ``opener`` returns (sock, response), called on the pump's thread: on
        # Podman a followed logs request answers only with the first output, and
        # a silent step must still time out and be cancelled on time.
        self._opener = opener
        self.open_error: BaseException | None = None
        self._sink = sink
        self.done = threading.Event()
        self.error: BaseException | None = None
        # A logs response carries timestamps: the newest one seen (ns), so
        # `_catch_up` can fetch exactly what the follow missed.
        self.timestamped = response is not None or opener is not None
        # Per stream: the last stamp delivered and how many entries had it (see `_catch_up`).
        self.marks: dict[int, tuple[int, int]] = {}
        if sock is not None:
            disable_timeout(sock)
        self._thread = threading.Thread(target=self._loop, name="pipex-log-pump", daemon=True)
        self._thread.start()

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        if self._sock is not None:
            from docker.utils.socket import frames_iter

            yield from frames_iter(self._sock, tty=False)
            return
        for stream, entry in log_entries(self._response.raw):
            ns, data = split_timestamp(entry)
            last, count = self.marks.get(stream, (-1, 0))
            self.marks[stream] = (ns, count + 1) if ns == last else (ns, 1)
            yield stream, data

    def _loop(self) -> None:
        try:
            if self._opener is not None:
                try:
                    self._sock, self._response = self._opener()
                except BaseException as error:  # handed to the step's thread through open_error
                    self.open_error = error
                    self.timestamped = False
                    return
                self.timestamped = self._response is not None
                if self._sock is not None:
                    disable_timeout(self._sock)
            for stream, data in self._frames():
                if self._sink is not None and data:
                    try:
                        self._sink.write(stream, data)
                    except Exception as error:  # a full disk or a failing on_log: keep draining,
                        self.error = error  # or the step would block on a full pipe forever
                        self._sink = None
        except Exception as error:  # closed under us by close() after a kill, or the daemon went away
            self.error = self.error or error
        finally:
            self.done.set()

    def close(self) -> None:
        """Close the stream and wait for the thread (briefly: it ends at EOF or on close)."""
        if self._sock is None and self._response is None:
            self._thread.join(5)  # still opening: the request ends when the container is removed
            if self._sock is None and self._response is None:
                return
        if self._sock is not None:
            if not self.done.is_set():
                shutdown_socket(self._sock)
            self._thread.join(5)
            try:
                self._sock.close()
            except OSError:
                pass
        else:
            if not self.done.is_set():
                self._response.close()
            self._thread.join(5)
            self._response.close()


def log_entries(raw: Any) -> Iterator[tuple[int, bytes]]:
    """Yield (stream, entry) from a multiplexed logs body; one frame is one log entry."""
    while True:
        header = raw.read(8)
        if len(header) < 8:
            return
        stream, length = struct.unpack(">BxxxL", header)
        parts: list[bytes] = []
        while length > 0:
            data = raw.read(min(length, _READ_CHUNK))
            if not data:
                return
            parts.append(data)
            length -= len(data)
        yield stream, b"".join(parts)


_TIMESTAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def split_timestamp(entry: bytes) -> tuple[int, bytes]:
    """Split ``b"2026-01-02T03:04:05.123456789Z data"`` into (unix ns, data)."""
    stamp, _, data = entry.partition(b" ")
    match = _TIMESTAMP.fullmatch(stamp)
    if match is None:  # not a timestamp after all: keep the bytes
        return -1, entry
    whole, fraction, zone = (part.decode("ascii") if part else "" for part in match.groups())
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9]), data


def disable_timeout(sock: Any) -> None:
    """A step may be silent for longer than the API timeout: reads on its stream must block."""
    for candidate in (sock, getattr(sock, "_sock", None)):
        if candidate is not None and hasattr(candidate, "settimeout"):
            candidate.settimeout(None)


def shutdown_socket(sock: Any) -> None:
    for candidate in (getattr(sock, "_sock", None), sock):
        if isinstance(candidate, socketlib.socket):
            try:
                candidate.shutdown(socketlib.SHUT_RDWR)
            except OSError:
                pass
            return


def follow_output(api: Any, container_id: str, inv: Invocation, sink: LogSink) -> Pump:
    """Stream the started container's output into the sink (logs follow; attach if logs are unreadable)."""
    from docker.errors import APIError

    def open_stream() -> tuple[Any, Any]:
        with mapped_errors(f"following the output of step '{inv.step_id}'"):
            try:
                response = api._get(
                    api._url("/containers/{0}/logs", container_id),
                    params={"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 1},
                    stream=True,
                )
                disable_timeout(api._get_raw_response_socket(response))
                return None, response
            except APIError as error:
                if error.status_code is None or error.status_code >= 500 and error.status_code != 501:
                    raise
                # A log driver the engine cannot read back ("none"...): attaching
                # late may miss the first lines, but the step still runs.
                return api.attach_socket(container_id, params={"stdout": 1, "stderr": 1, "stream": 1}), None

    return Pump(sink, opener=open_stream)


def catch_up(api: Any, container_id: str, inv: Invocation, pump: Pump, sink: LogSink) -> None:
    """Append what a follow missed: it can end before the engine logged the last (partial) line.

    One more logs request, from the last timestamp seen; entries at that
    timestamp already received are skipped, so nothing is written twice.
    """
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1}
    # NOTE: within one stream the log is in stamp order, but stdout and stderr
    # are copied by separate goroutines, so across streams an entry stamped
    # earlier may come after a later one. Hence a mark per stream: the last
    # stamp delivered and how many entries had it (a long line's pieces share
    # one). A stream the follow never saw is re-read from a second before the
    # other's mark. O(1) memory, whatever the step printed.
    marks = dict(pump.marks)
    since = min((ns for ns, _ in marks.values()), default=0)
    if len(marks) == 1:
        since = max(0, since - _UNSEEN_STREAM_SLACK_NS)
    if since > 0:
        params["since"] = f"{since // 1_000_000_000}.{since % 1_000_000_000:09d}"
    skip = {stream: count for stream, (_, count) in marks.items()}
    with mapped_errors(f"reading the output of step '{inv.step_id}'"):
        response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
        api._raise_for_status(response)
        try:
            for stream, entry in log_entries(response.raw):
                ns, data = split_timestamp(entry)
                mark = marks.get(stream)
                if mark is not None:
                    if ns < mark[0]:
                        continue
                    if ns == mark[0] and skip[stream] > 0:
                        skip[stream] -= 1
                        continue
                sink.write(stream, data)
        finally:
            response.close()
