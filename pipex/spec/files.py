"""Reading the files a user points pipex at (pipelines, .pipex.yml, env files) without hanging or swallowing the disk."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["MAX_INPUT_BYTES", "read_input_file"]

#: A pipeline, config or env file larger than this is refused: no hand-written
#: file is, and reading a 10 GB one would take the machine.
MAX_INPUT_BYTES = 64 << 20


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def read_input_file(path: Path | str) -> bytes:
    """The bytes of the regular file ``path``; OSError (with a readable strerror) for anything else.

    Opened non-blocking, so a fifo or a device is refused instead of waiting
    forever for a writer; at most MAX_INPUT_BYTES are accepted.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise OSError(errno.EINVAL, f"it is {kind}, not a regular file" if kind.startswith("a ") else kind, str(path))
        if info.st_size > MAX_INPUT_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_INPUT_BYTES >> 20} MiB", str(path))
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_INPUT_BYTES:  # it grew while we read
                raise OSError(errno.EFBIG, f"larger than {MAX_INPUT_BYTES >> 20} MiB", str(path))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
