"""The content-addressed store: objects, trees, runs, refs, checkouts; gc, prune and verify."""

from __future__ import annotations

from typing import Any

from pipex.store.objects import hash_bytes, hash_file
from pipex.store.runs import RunNotFoundError, RunRecord
from pipex.store.store import IngestResult, Store, default_root
from pipex.store.trees import EntryType, Tree, TreeEntry, UnsafeOutputError

# gc, prune and verify are imported on first use: a no-op plan or build never
# needs them, and importing them costs ~20 ms of a ~150 ms budget.
_LAZY = {
    "gc": "pipex.store.gc",
    "prune": "pipex.store.gc",
    "GcReport": "pipex.store.gc",
    "PruneReport": "pipex.store.gc",
    "verify": "pipex.store.verify",
    "VerifyReport": "pipex.store.verify",
    "Problem": "pipex.store.verify",
    "ProblemKind": "pipex.store.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'pipex.store' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "Store",
    "IngestResult",
    "Tree",
    "TreeEntry",
    "EntryType",
    "RunRecord",
    "RunNotFoundError",
    "UnsafeOutputError",
    "default_root",
    "hash_bytes",
    "hash_file",
    "gc",
    "prune",
    "verify",
    "GcReport",
    "PruneReport",
    "VerifyReport",
    "Problem",
    "ProblemKind",
]
