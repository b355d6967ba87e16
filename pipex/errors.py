"""The PipexError tree: every error a user can cause, each with its exit code."""

from __future__ import annotations

__all__ = [
    "PipexError",
    "SpecError",
    "SpecErrors",
    "UsageError",
    "StoreError",
    "StoreCorruptError",
    "LockBusyError",
    "DockerUnavailableError",
    "ImageError",
    "StepFailedError",
    "InterruptedBuild",
    "HostPathError",
    "ContainerError",
    "RemoteError",
    "RemoteDeniedError",
    "RemoteObjectError",
    "shorten",
]


def shorten(text: str, limit: int = 60) -> str:
    """A message names a value, not a 5,000-character one: cut ``text`` in the middle, saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 4:]} ({len(text)} characters)"


# What str.splitlines() breaks on, as the escapes repr() would print.
_ESCAPE_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


class PipexError(Exception):
    """Raised for any error pipex reports to a user as one line (no traceback)."""

    exit_code: int = 2


class UsageError(PipexError):
    """Raised when a command-line value is invalid (unknown target, bad -j...)."""


class SpecError(PipexError):
    """Raised when a pipeline or config file is invalid at one place.

    ``file``, ``line``, ``column`` locate the problem where known; ``path`` is the
    JSON path inside the document (``steps[2].inputs[0].step``).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        """Return ``FILE:LINE:COL: PATH: MESSAGE`` with the parts that are known."""
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        path = f"{self.path}: " if self.path else ""
        # A key or value from the file may hold a line break (YAML allows "\x1e"
        # or "\u2028" in a key): escape it so one problem stays one line.
        return f"{where}{path}{self.message}".translate(_ESCAPE_LINE_BREAKS)


class SpecErrors(PipexError):
    """Raised when a file has several problems; each is reported on its own line."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class StoreError(PipexError):
    """Raised when the store cannot be read or written (permissions, full disk...)."""


class StoreCorruptError(StoreError):
    """Raised when an object, tree or run in the store is damaged or missing."""


class LockBusyError(PipexError):
    """Raised when a lock another live process holds is required and waiting is not allowed."""


class DockerUnavailableError(PipexError):
    """Raised when no Docker daemon answers at the configured address."""


class ImageError(PipexError):
    """Raised when a step's image is neither local nor pullable."""

    exit_code = 1


class StepFailedError(PipexError):
    """Raised when a build ends with at least one failed step."""

    exit_code = 1


class InterruptedBuild(PipexError):
    """Raised when a build is stopped by SIGINT or SIGTERM."""

    exit_code = 130


class HostPathError(PipexError):
    """Raised when a step's ``mounts``/``sources`` host path is missing or unreadable."""


class ContainerError(PipexError):
    """Raised when the engine refuses to create, start or manage a step's container."""

    exit_code = 1


class RunNotFoundError(StoreError):
    """Raised when a run id names no run in the store."""


class UnsafeOutputError(StoreError):
    """Raised when a step's output holds something the store refuses (special file, link leaving it)."""


__all__ += ["RunNotFoundError", "UnsafeOutputError"]


class RemoteError(PipexError):
    """Raised when the remote cache cannot be reached or read (a warning unless ``remote.required``)."""


class RemoteDeniedError(RemoteError):
    """Raised when the remote refuses a request for lack of permission (read-only credentials)."""


class RemoteObjectError(StoreCorruptError):
    """Raised when an object a lazily pulled run names is missing from the remote or arrives damaged."""

    def __init__(self, message: str, oid: str) -> None:
        super().__init__(message)
        self.oid = oid


class ClusterError(PipexError):
    """Raised when a cluster executor cannot start: no scheduler, no worker with Docker, another pipex version."""


class ClusterLostError(ClusterError):
    """Raised when the cluster goes away mid-build (scheduler gone): finished steps are kept."""

    exit_code = 1


__all__ += ["ClusterError", "ClusterLostError"]
