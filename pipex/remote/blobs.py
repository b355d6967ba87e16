"""The object-store seam: a few verbs on keys, whatever the server (S3 here; memory in unit tests).

Every key is relative to the remote's prefix. ``put`` never overwrites: the
remote is write-once (a second writer of a key changes nothing), which is what
makes a second push of unchanged work cost nothing and two racing writers
harmless. Errors are :class:`pipex.errors.RemoteError` with one line that says
what and where; a missing key is not an error (``get`` returns None).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipex.errors import RemoteDeniedError

__all__ = ["Blobs", "BlobInfo", "MemoryBlobs", "Counters"]


@dataclass(frozen=True)
class BlobInfo:
    """One listed key: its name, size and last-modified time (Unix seconds)."""

    key: str
    size: int
    modified: float


@dataclass
class Counters:
    """Requests made, by kind (benchmarks and tests read them: 'no object bytes fetched')."""

    gets: int = 0
    heads: int = 0
    puts: int = 0
    lists: int = 0
    deletes: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, count: int = 1) -> None:
        """Count ``count`` more of ``name``."""
        with self.lock:
            setattr(self, name, getattr(self, name) + count)


class Blobs(Protocol):
    """What pipex asks of an object store."""

    counters: Counters

    def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None if there is none."""
        ...

    def get_to(self, key: str, fd: int) -> int | None:
        """Stream ``key`` into the open file ``fd``; its size, or None if there is none."""
        ...

    def head(self, key: str) -> BlobInfo | None:
        """Size and age of ``key``, or None."""
        ...

    def put(self, key: str, data: bytes) -> bool:
        """Write ``key`` unless it exists; True if this call wrote it."""
        ...

    def put_file(self, key: str, path: str, size: int) -> bool:
        """Write the file ``path`` (multipart when large) unless ``key`` exists; True if written."""
        ...

    def touch(self, key: str) -> None:
        """Make ``key`` young again (remote gc's grace counts from here)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        """Every key under ``prefix``."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Remove ``keys`` (absent ones are fine)."""
        ...

    def abort_uploads(self, older_than: float, *, dry_run: bool = False) -> int:
        """Abort multipart uploads begun more than ``older_than`` seconds ago (a killed push's); how many."""
        ...


class MemoryBlobs:
    """An in-memory remote for unit tests of the protocol (crash points, races); never for integration tests."""

    def __init__(self, *, writable: bool = True) -> None:
        """An empty remote; ``writable=False`` refuses every write like read-only credentials."""
        self.data: dict[str, tuple[bytes, float]] = {}
        self.writable = writable
        self.counters = Counters()
        self.fail_put: set[str] = set()  # key prefixes whose put raises (fault injection)
        self._lock = threading.Lock()

    def _check_write(self, key: str) -> None:
        if not self.writable:
            raise RemoteDeniedError(f"remote refused writing {key}: access denied")
        if any(key.startswith(prefix) for prefix in self.fail_put):
            raise OSError(f"injected failure writing {key}")

    def get(self, key: str) -> bytes | None:  # noqa: D102 - the protocol says it
        self.counters.add("gets")
        item = self.data.get(key)
        if item is not None:
            self.counters.add("bytes_in", len(item[0]))
        return None if item is None else item[0]

    def get_to(self, key: str, fd: int) -> int | None:  # noqa: D102
        import os

        data = self.get(key)
        if data is None:
            return None
        os.write(fd, data)
        return len(data)

    def head(self, key: str) -> BlobInfo | None:  # noqa: D102
        self.counters.add("heads")
        item = self.data.get(key)
        return None if item is None else BlobInfo(key, len(item[0]), item[1])

    def put(self, key: str, data: bytes) -> bool:  # noqa: D102
        self._check_write(key)
        self.counters.add("puts")
        with self._lock:
            if key in self.data:
                return False
            self.data[key] = (bytes(data), time.time())
            self.counters.add("bytes_out", len(data))
            return True

    def put_file(self, key: str, path: str, size: int) -> bool:  # noqa: D102
        with open(path, "rb") as handle:
            return self.put(key, handle.read())

    def touch(self, key: str) -> None:  # noqa: D102
        self._check_write(key)
        with self._lock:
            if key in self.data:
                self.data[key] = (self.data[key][0], time.time())

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:  # noqa: D102
        self.counters.add("lists")
        for key, (data, modified) in sorted(self.data.items()):
            if key.startswith(prefix):
                yield BlobInfo(key, len(data), modified)

    def delete(self, keys: list[str]) -> None:  # noqa: D102
        self._check_write(keys[0] if keys else "")
        self.counters.add("deletes", len(keys))
        with self._lock:
            for key in keys:
                self.data.pop(key, None)

    def abort_uploads(self, older_than: float, *, dry_run: bool = False) -> int:  # noqa: D102
        return 0  # puts here are whole or absent
