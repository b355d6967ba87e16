"""Reading the files a user points pipex at (pipelines, .pipex.yml, env files) without hanging or swallowing the disk."""

from __future__ import annotations

from pathlib import Path

from pipex.store._fs import read_regular_file

__all__ = ["MAX_INPUT_BYTES", "read_input_file"]

#: A pipeline, config or env file larger than this is refused: no hand-written
#: file is, and reading a 10 GB one would take the machine.
MAX_INPUT_BYTES = 64 << 20


def read_input_file(path: Path | str) -> bytes:
    """The bytes of the regular file ``path``; OSError (with a readable strerror) for a fifo, a device or a huge file.

    Opened non-blocking, so a fifo is refused instead of waiting forever for a writer.
    """
    return read_regular_file(path, MAX_INPUT_BYTES)
