"""Filesystem primitives for the store: fsync, atomic writes, robust removal, process identity."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipex.errors import StoreError

__all__ = [
    "fsync_dir",
    "syncfs",
    "write_atomic",
    "write_temp",
    "rmtree",
    "copy_fd",
    "process_start_time",
    "process_alive",
    "store_errors",
    "show_path",
]

@functools.cache
def _libc_syncfs() -> object | None:
    """libc's ``syncfs``, loaded on first use: ctypes costs ~4 ms to import, and reads never sync."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no libc (not Linux)
        return None
    return getattr(libc, "syncfs", None)


def fsync_dir(path: str | bytes | os.PathLike[str]) -> None:
    """Make the names in directory ``path`` durable (after renames or unlinks)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: str | bytes | os.PathLike[str]) -> None:
    """Flush every dirty page and name of the filesystem holding ``path``.

    # NOTE: one syncfs per ingest instead of one fsync per object: it gives the
    # same ordering guarantee (objects durable before the tree that names them)
    # for one journal commit instead of N, at the price of also flushing other
    # writers' dirty data on that filesystem.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syncfs_call = _libc_syncfs()
        if syncfs_call is not None:
            if syncfs_call(fd) != 0:  # type: ignore[operator]
                import ctypes

                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), os.fsdecode(path))
        else:  # pragma: no cover - non-Linux
            os.sync()
    finally:
        os.close(fd)


def write_temp(data: bytes, tmp_dir: Path | str, *, mode: int = 0o444, sync: bool = True) -> str:
    """Write ``data`` to a new temp file in ``tmp_dir`` (fsynced unless ``sync`` is False); return its path."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="w-")
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchmod(fd, mode)
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def write_atomic(dest: Path, data: bytes, tmp_dir: Path, *, mode: int = 0o444) -> None:
    """Write ``data`` to ``dest`` so a reader sees all of it or nothing: temp + fsync + rename."""
    tmp = write_temp(data, tmp_dir, mode=mode)
    try:
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def copy_fd(src: int, dst: int) -> int:
    """Copy all of ``src`` into ``dst`` in the kernel where possible; return the bytes copied."""
    total = 0
    try:
        while True:
            sent = os.sendfile(dst, src, None, 1 << 30)
            if sent == 0:
                return total
            total += sent
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or total:
            raise
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
        total += len(chunk)
    return total


def rmtree(path: str | bytes | os.PathLike[str]) -> None:
    """Remove ``path`` and everything below it, read-only directories included; missing is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    # Checkouts and step outputs contain read-only (0555) directories; unlinking
    # their entries needs u+w, so open them up top-down before removing.
    if st.st_mode & 0o700 != 0o700:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            child = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if os.lstat(child).st_mode & 0o700 != 0o700:
                    os.chmod(child, 0o700)

    def missing_ok(func: object, failed: str, exc_info: tuple[type, BaseException, object]) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=missing_ok)


def process_start_time(pid: int) -> int | None:
    """Return the start time of ``pid`` in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and ')'; fields after the last ')' are fixed.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if process ``pid`` exists and (when known) started at ``start_time``: pid reuse is not life."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    if start_time:
        current = process_start_time(pid)
        if current is not None and current != start_time:
            return False
    return True


def show_path(path: bytes | str) -> str:
    """Render a byte-exact name on one printable line (non-UTF-8 bytes as \\xNN, newlines as \\n)."""
    text = path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the store is on a read-only filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


@contextlib.contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn an OSError inside the block into a one-line StoreError that says what failed and why."""
    try:
        yield
    except OSError as error:
        reason = _ERRNO_HINTS.get(error.errno or 0) or error.strerror or str(error)
        where = f" ({show_path(os.fsencode(error.filename))})" if error.filename else ""
        msg = f"{what}: {reason}{where}"
        raise StoreError(msg) from error
