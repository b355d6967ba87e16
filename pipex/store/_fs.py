"""Filesystem primitives for the store: fsync, atomic writes, robust removal, process identity."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pipex.errors import StoreError

__all__ = [
    "fsync_dir",
    "syncfs",
    "exchange",
    "write_atomic",
    "write_temp",
    "rmtree",
    "walk_files",
    "walk_entries",
    "read_regular_file",
    "file_kind",
    "copy_fd",
    "copy_file",
    "rename_into_place",
    "store_errors",
    "show_path",
]

@functools.cache
def _libc(name: str) -> object | None:
    """A libc function (``syncfs``, ``renameat2``), loaded on first use: ctypes costs ~4 ms to import, and reads never need it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no libc (not Linux)
        return None
    return getattr(libc, name, None)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
    """Swap the names ``a`` and ``b`` atomically (``renameat2(RENAME_EXCHANGE)``).

    A reader sees the old or the new one under each name, never neither.
    Where the kernel or filesystem lacks it, falls back to two renames
    (``b`` is briefly absent), raising nothing new.
    """
    call = _libc("renameat2")
    if call is not None:
        import ctypes

        if call(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:  # type: ignore[operator]
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), os.fsdecode(a))
    aside = f"{os.fsdecode(a)}.old"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


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
        syncfs_call = _libc("syncfs")
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


def write_atomic(
    dest: Path, data: bytes, tmp_dir: Path | str, *, mode: int = 0o444, durable: Callable[[], None] | None = None
) -> None:
    """Write ``data`` to ``dest`` so a reader sees all of it or nothing: temp + fsync + rename.

    ``durable`` replaces the temp file's fsync: a caller that must make more
    than this file durable first (ingest: the objects the tree names) does it
    in one ``syncfs``.
    """
    tmp = write_temp(data, tmp_dir, mode=mode, sync=durable is None)
    try:
        if durable is not None:
            durable()
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


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def rename_into_place(tmp: Path | str, dest: Path | str) -> bool:
    """Rename the complete directory ``tmp`` to ``dest``; False when another process put one there first."""
    try:
        os.rename(tmp, dest)
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        return False
    return True


def copy_file(src: bytes, dest: bytes, mode: int) -> None:
    """Copy file ``src`` to the new file ``dest`` (never through a link) with ``mode``."""
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            copy_fd(src_fd, dst_fd)
            os.fchmod(dst_fd, mode)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _open_dir(name: bytes, dir_fd: int | None) -> int:
    """Open directory ``name`` (relative to ``dir_fd``) for listing, giving ourselves u+rwx if need be."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # Ours but mode 0: open it up (a link is never followed: lstat said dir).
        os.chmod(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_mode & 0o700 != 0o700:
            os.fchmod(fd, 0o700)  # unlinking entries needs u+w (checkouts are 0555)
    return fd


def _empty_dir(fd: int) -> list[bytes]:
    """Unlink every non-directory in the open directory ``fd``; return its subdirectories' names."""
    subdirs = []
    with os.scandir(fd) as it:
        for entry in it:
            name = os.fsencode(entry.name)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_dir:
                subdirs.append(name)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    return subdirs


def rmtree(path: str | bytes | os.PathLike[str]) -> None:
    """Remove ``path`` and everything below it, read-only directories included; missing is fine.

    # NOTE: iterative and relative to directory fds, never on the Python stack
    # and never by full path: a step's output may nest thousands of levels
    # (shutil.rmtree and Python 3.11's os.walk recurse: RecursionError; long
    # paths: ENAMETOOLONG). It holds one fd at a time, moving up with "..",
    # and checks on the way up that ".." is the directory it came from.
    """
    path_b = os.fsencode(path)
    try:
        st = os.lstat(path_b)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path_b)
        return
    parent, base = os.path.split(os.path.normpath(os.path.abspath(path_b)))
    top_fd = os.open(parent, _DIR_FLAGS & ~os.O_NOFOLLOW)
    # The stack: per directory entered, (its name, its parent's (dev, ino), subdirs still to remove).
    fd = top_fd
    stack: list[tuple[bytes, tuple[int, int], list[bytes]]] = []
    try:
        pending = [base]
        while True:
            if pending:
                name = pending.pop()
                here = os.fstat(fd)
                try:
                    child = _open_dir(name, fd)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                stack.append((name, (here.st_dev, here.st_ino), pending))
                if fd != top_fd:
                    os.close(fd)
                fd = child
                pending = _empty_dir(fd)
                continue
            if not stack:
                return
            name, parent_id, pending = stack.pop()
            if stack:
                up = os.open(b"..", _DIR_FLAGS, dir_fd=fd)
                seen = os.fstat(up)
                if (seen.st_dev, seen.st_ino) != parent_id:
                    os.close(up)
                    msg = f"directory moved while it was being removed: {show_path(path_b)}"
                    raise OSError(errno.ESTALE, msg)
            else:
                up = top_fd
            os.close(fd)
            fd = up
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(name, dir_fd=fd)
    finally:
        if fd != top_fd:
            os.close(fd)
        os.close(top_fd)


def walk_entries(path: str | bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    """Every entry below ``path`` (directories too) with its lstat, iteratively (any depth), links not followed."""
    pending = [os.fsencode(path)]
    while pending:
        directory = pending.pop()
        try:
            it = os.scandir(directory)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
                yield entry.path, st


def walk_files(path: str | bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    """Every non-directory below ``path`` with its lstat, iteratively (any depth), links not followed."""
    return ((found, st) for found, st in walk_entries(path) if not stat.S_ISDIR(st.st_mode))


def read_regular_file(path: str | bytes | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, opened non-blocking: a fifo or device is refused, never waited on.

    OSError(EINVAL) with a readable strerror for anything but a regular file,
    OSError(EFBIG) past ``limit`` bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"it is {file_kind(info.st_mode)}, not a regular file", os.fsdecode(path))
        if limit is not None and info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", os.fsdecode(path))
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if limit is not None and total > limit:  # it grew while we read
                raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", os.fsdecode(path))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    """``a fifo``, ``a device``, ``a socket``, ``a directory``, ``a symlink``, ``a file``: for messages."""
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a file"


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
