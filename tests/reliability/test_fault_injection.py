"""Fault injection at every store write point: a crash (or an I/O error) at the Nth filesystem operation.

For each store operation a build or a maintenance command performs (ingest,
record a run, swap a ref, a forced replace, gc, prune, verify --repair,
removing a workspace), the operation is first run once to count its write
operations; then, for every N, a forked child runs it on a fresh copy of the
store and dies (``os._exit``) or gets an ``OSError(EIO)`` at operation N.
Afterwards the store must open, verify clean (apart from damage the scenario
itself planted, for repair), and the operation run again must complete.

Counts: ``PIPEX_RELIABILITY_FAULT_STRIDE`` (default 1: every write point).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipex.store import Store
from pipex.store import _fs
from pipex.store.gc import gc, prune
from pipex.store.verify import verify
from pipex.store.runs import RunMeta

from .conftest import iterations

# The os functions that change the filesystem; the libc calls go through _fs.
_WRITE_OPS = (
    "rename", "replace", "link", "symlink", "unlink", "mkdir", "rmdir", "chmod", "fchmod",
    "write", "fsync", "removexattr", "truncate", "ftruncate",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


_REAL_WRITE = os.write  # the child reports its count through this, past the wrappers


def _install(fault_at: int, mode: str, counter: list[int]) -> None:
    """Wrap every write operation: count it; at ``fault_at`` die (mode 'kill') or raise EIO (mode 'raise')."""

    def hit(name: str) -> None:
        counter[0] += 1
        if counter[0] == fault_at:
            if mode == "kill":
                os._exit(137)
            raise OSError(errno.EIO, f"injected fault at {name} #{fault_at}")

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            hit(name)
            return original(*args, **kwargs)

        return wrapped

    for name in _WRITE_OPS:
        setattr(os, name, wrap(name, getattr(os, name)))
    original_open = os.open

    def counted_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _WRITE_FLAGS:
            hit("open")
        return original_open(path, flags, *args, **kwargs)

    os.open = counted_open  # type: ignore[assignment]
    _fs.syncfs = wrap("syncfs", _fs.syncfs)  # type: ignore[assignment]
    _fs.exchange = wrap("exchange", _fs.exchange)  # type: ignore[assignment]
    import sys

    # Every store module that imported them by name sees the counting versions.
    for module in [m for name, m in sys.modules.items() if name.startswith("pipex.store.")]:
        for name in ("syncfs", "exchange"):
            if getattr(module, name, None) is not None and module is not _fs:
                setattr(module, name, getattr(_fs, name))


def _in_child(root: Path, operation: Callable[[Store], None], fault_at: int, mode: str) -> tuple[int, int]:
    """Run ``operation`` on the store at ``root`` in a forked child with a fault; return (exit status, writes seen)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        counter = [0]
        code = 0
        try:
            _install(fault_at, mode, counter)
            operation(Store.open(root))
        except BaseException:  # the injected fault, or what it caused: the point of the test
            code = 1
        _REAL_WRITE(write, str(counter[0]).encode())
        os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    seen = os.read(read, 64)
    os.close(read)
    return status, int(seen or b"-1")


def _output(base: Path, files: dict[str, bytes]) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return base


def _build_like(store: Store, out: Path, run_id: str, step: str, *, replace: bool = False) -> None:
    """What a build does in the store for one step: ingest, record the run with its logs, set the ref."""
    ingested = store.ingest(out)
    logs = out.parent / f"logs-{run_id}"
    logs.mkdir(exist_ok=True)
    (logs / "stdout.log").write_text("out\n")
    meta = {"step": step, "status": "succeeded", "fingerprint": run_id, "output_tree": ingested.tree_id}
    store.record_run(run_id, RunMeta.from_dict(meta), logs, replace=replace)
    store.set_ref("ws", step, run_id)


def _seeded(template: Path) -> None:
    """A store with a workspace of two steps, an older run, garbage, and a checkout."""
    store = Store.open(template)
    store.create_workspace("ws", template.parent)
    _build_like(store, _output(template.parent / "seed1", {"a.txt": b"a" * 100, "d/b.txt": b"b"}), "r1", "one")
    _build_like(store, _output(template.parent / "seed2", {"c.txt": b"c"}), "r2", "two")
    _build_like(store, _output(template.parent / "seed3", {"c.txt": b"newer c"}), "r3", "two")
    store.ingest(_output(template.parent / "seed4", {"garbage.bin": os.urandom(500)}))
    store.checkout(store.read_run("r1").meta.output_tree)


def _damage(root: Path) -> None:
    """A corrupt object for repair to quarantine."""
    store = Store.open(root)
    tree = store.read_tree(store.read_run("r1").meta.output_tree)
    entry = next(e for e in tree.entries if e.oid)
    path = store.objects.path(entry.oid or "", entry.executable)
    os.chmod(path, 0o644)
    path.write_bytes(b"rotten")


def _new_output(root: Path) -> Path:
    return _output(root.parent / f"new-{os.getpid()}-{os.urandom(3).hex()}", {"n.txt": b"new", "deep/e/f.txt": b"f"})


SCENARIOS: dict[str, tuple[Callable[[Store], None], bool]] = {
    # name: (operation, plants damage first)
    "ingest-record-ref": (lambda s: _build_like(s, _new_output(s.root), "r4", "three"), False),
    "forced-replace": (lambda s: _build_like(s, _new_output(s.root), "r1", "one", replace=True), False),
    "gc": (lambda s: (s.remove_ref("ws", "two"), gc(s)) and None, False),
    "prune": (lambda s: prune(s, "ws") and None, False),
    "remove-workspace": (lambda s: (s.remove_workspace("ws"), gc(s)) and None, False),
    "verify-repair": (lambda s: verify(s, repair=True) and None, True),
}


@pytest.mark.parametrize("mode", ["kill", "raise"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_fault_at_every_write_point_leaves_a_store_that_opens_verifies_and_completes(
    tmp_path: Path, scenario: str, mode: str
) -> None:
    operation, damaged = SCENARIOS[scenario]
    template = tmp_path / "template" / "store"
    _seeded(template)
    if damaged:
        _damage(template)
    # Count the write operations of an undisturbed run.
    probe = tmp_path / "probe" / "store"
    shutil.copytree(template, probe, symlinks=True)
    status, total = _in_child(probe, operation, 0, mode)
    assert status == 0 and total > 0, (status, total)
    stride = iterations("fault_stride", 1)
    faults = 0
    for fault_at in range(1, total + 1, stride):
        root = tmp_path / f"at{fault_at}" / "store"
        shutil.copytree(template, root, symlinks=True)
        _in_child(root, operation, fault_at, mode)
        faults += 1
        store = Store.open(root)  # must open, whatever the fault left
        report = verify(store)
        if not damaged:
            assert report.ok, (scenario, mode, fault_at, report.problems)
        status, _ = _in_child(root, operation, 0, mode)  # the operation again, undisturbed
        assert status == 0, (scenario, mode, fault_at, "the operation did not complete after the fault")
        final = verify(Store.open(root))
        assert final.ok, (scenario, mode, fault_at, final.problems)
        _fs.rmtree(root.parent)
    print(f"fault injection {scenario}/{mode}: {faults} faults over {total} write points")
    assert faults >= total // stride
