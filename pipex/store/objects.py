"""Objects: file contents named by the xxh3-128 of their bytes, moved into the store once.

On disk::

    objects/<oid[:2]>/<oid[2:]>      plain object, mode 0444
    objects/<oid[:2]>/<oid[2:]>.x    executable object, mode 0555

``oid`` is ``xxhash.xxh3_128(content).hexdigest()`` (32 lowercase hex digits).
Objects are immutable and never written in place: a file arrives by ``rename``
(no byte copied) or, across filesystems or when rename is not permitted, by a
copy into a staging temp file that is renamed into place. Either way a reader
sees a whole object or none.

# NOTE: a checkout hard-links objects, and a hard link shares the inode's
# mode, so the exec bit cannot be a property of the checkout. An executable
# file is therefore kept as its own inode (``.x``, 0555). The same content
# used both ways is stored twice; in practice that is rare and the price of
# checkouts that cost one ``link`` per file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Protocol

import xxhash

from pipex.errors import StoreCorruptError, StoreError

__all__ = ["CHUNK", "hash_bytes", "hash_file", "hash_fd", "is_oid", "ObjectDB", "TmpDir"]

CHUNK = 1 << 20  # 1 MiB: big enough to amortise syscalls, small enough to stay in L2/L3

_OID_RE = re.compile(r"^[0-9a-f]{32}$")
_local = threading.local()

# Renaming a file we cannot modify fails with these; copying still works.
_COPY_INSTEAD = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES})


def is_oid(value: object) -> bool:
    """True if ``value`` is a well-formed object or tree id (32 lowercase hex digits)."""
    return isinstance(value, str) and _OID_RE.match(value) is not None


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Return the object id of ``data``."""
    return xxhash.xxh3_128_hexdigest(data)


def _buffer() -> memoryview:
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK))
    return view


def hash_fd(fd: int) -> tuple[str, int]:
    """Hash an open file from its current offset to EOF in 1 MiB chunks; return (oid, size)."""
    hasher = xxhash.xxh3_128()
    view = _buffer()
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as handle:
        while n := handle.readinto(view):
            hasher.update(view[:n])
            size += n
    return hasher.hexdigest(), size


def hash_file(path: str | os.PathLike[str] | bytes) -> str:
    """Return the object id of the file at ``path`` (streamed; symlinks are followed)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return hash_fd(fd)[0]
    finally:
        os.close(fd)


def _strip_xattrs(fd: int) -> bool:
    """Remove every extended attribute of the open file; False if one could not be removed.

    # NOTE: a step runs as root in its container and may set
    # ``security.capability`` (file capabilities) or an ACL on an output file;
    # kept on a store object, any local user could run it with those rights.
    # Like setuid bits, nothing that grants anything survives ingest. When
    # removal is refused, the caller copies the bytes into a fresh inode.
    """
    try:
        names = os.listxattr(fd)
    except OSError as error:
        return error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)  # no xattrs on this filesystem
    for name in names:
        try:
            os.removexattr(fd, name)
        except OSError:
            return False
    return True


class TmpDir(Protocol):
    """Where temp files go: ``get()`` returns this process's private dir under staging/."""

    def get(self) -> str:
        """The directory (created on first use)."""
        ...


class ObjectDB:
    """The ``objects/`` directory: paths, presence, and moving files in."""

    def __init__(self, root: Path, tmp_dir: TmpDir) -> None:
        self.root = root
        self._root_b = os.fsencode(root)
        self._tmp_dir = tmp_dir
        self._prefixes: set[bytes] = set()

    def path(self, oid: str, executable: bool = False) -> Path:
        """Where object ``oid`` lives (its ``.x`` variant when ``executable``)."""
        return Path(os.fsdecode(self._path_b(oid, executable)))

    def _path_b(self, oid: str, executable: bool) -> bytes:
        """THE object path rule (bytes, for the hot paths): ``objects/<oid[:2]>/<oid[2:]>[.x]``."""
        return b"%s/%s/%s%s" % (self._root_b, oid[:2].encode(), oid[2:].encode(), b".x" if executable else b"")

    def _ensure_prefix(self, oid: str) -> None:
        prefix = oid[:2].encode()
        if prefix not in self._prefixes:
            os.makedirs(os.path.join(self._root_b, prefix), exist_ok=True)
            self._prefixes.add(prefix)

    def ensure_fanout(self) -> None:
        """Create all 256 fan-out dirs now (a store in use has them; ingest makes them lazily)."""
        for i in range(256):
            self._ensure_prefix(f"{i:02x}")

    def _present(self, dest: bytes, size: int) -> bool:
        # A same-named object of another size is damaged: replace it with this good copy.
        try:
            return os.lstat(dest).st_size == size
        except FileNotFoundError:
            return False

    def add_file(self, src: bytes, expected: os.stat_result, executable: bool, *, copy: bool) -> tuple[str, int]:
        """Move (or copy) the regular file ``src`` into the store; return (oid, size).

        ``expected`` is the lstat taken when the output was scanned: the file
        must still be that inode (nobody swapped it for a link or a fifo).
        The source name is gone afterwards unless removing it was refused.
        """
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_ino != expected.st_ino or st.st_dev != expected.st_dev:
                msg = f"output file {os.fsdecode(src)!r} changed while it was being stored"
                raise StoreError(msg)
            if copy or not _strip_xattrs(fd):
                oid, size = self._copy_in(fd, executable)
            else:
                oid, size = hash_fd(fd)
                dest = self._path_b(oid, executable)
                if not self._present(dest, size):
                    self._ensure_prefix(oid)
                    try:
                        os.fchmod(fd, 0o555 if executable else 0o444)
                        os.rename(src, dest)
                        return oid, size
                    except OSError as error:
                        if error.errno not in _COPY_INSTEAD:
                            raise
                    os.lseek(fd, 0, os.SEEK_SET)
                    oid2, size = self._copy_in(fd, executable)
                    if oid2 != oid:
                        msg = f"output file {os.fsdecode(src)!r} changed while it was being stored"
                        raise StoreError(msg)
        finally:
            os.close(fd)
        # Consume the source; a name we may not remove (owned by another user) is
        # left for the caller's staging cleanup.
        with contextlib.suppress(OSError):
            os.unlink(src)
        return oid, size

    def present(self, oid: str, executable: bool, size: int) -> bool:
        """True if object ``oid`` (that variant) is stored with ``size`` bytes."""
        return self._present(self._path_b(oid, executable), size)

    def add_verified(self, tmp: str, oid: str, size: int, executable: bool) -> None:
        """Move the fetched file ``tmp`` in as ``oid``; StoreCorruptError (and ``tmp`` removed) unless it hashes to it."""
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                got, got_size = hash_fd(fd)
                if (got, got_size) != (oid, size):
                    msg = f"object {oid} from elsewhere is damaged (it hashes to {got}, {got_size} bytes, not {size})"
                    raise StoreCorruptError(msg)
                os.fchmod(fd, 0o555 if executable else 0o444)
            finally:
                os.close(fd)
            dest = self._path_b(oid, executable)
            if not self._present(dest, size):
                self._ensure_prefix(oid)
                os.rename(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _copy_in(self, fd: int, executable: bool) -> tuple[str, int]:
        """Copy an open file into a staging temp while hashing it (one read), then rename into place."""
        tmp_fd, tmp = tempfile.mkstemp(dir=self._tmp_dir.get(), prefix="obj-")
        try:
            hasher = xxhash.xxh3_128()
            view = _buffer()
            size = 0
            with open(fd, "rb", buffering=0, closefd=False) as handle:
                while n := handle.readinto(view):
                    hasher.update(view[:n])
                    chunk = view[:n]
                    while chunk:
                        chunk = chunk[os.write(tmp_fd, chunk) :]
                    size += n
            oid = hasher.hexdigest()
            os.fchmod(tmp_fd, 0o555 if executable else 0o444)
        except BaseException:
            os.close(tmp_fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(tmp_fd)
        dest = self._path_b(oid, executable)
        if self._present(dest, size):
            os.unlink(tmp)
        else:
            self._ensure_prefix(oid)
            os.rename(tmp, dest)
        return oid, size
