"""The content-addressed store: objects, trees, runs, refs, checkouts; gc, prune and verify."""

from __future__ import annotations

from pipex._lazy import lazy_exports
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


__getattr__ = lazy_exports(__name__, _LAZY, globals())

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
