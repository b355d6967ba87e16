"""The content-addressed store: objects, trees, runs, refs, checkouts; gc, prune and verify."""

from __future__ import annotations

from pipex.store.gc import GcReport, PruneReport, gc, prune
from pipex.store.objects import hash_bytes, hash_file
from pipex.store.runs import RunNotFoundError, RunRecord
from pipex.store.store import IngestResult, Store, default_root
from pipex.store.trees import EntryType, Tree, TreeEntry, UnsafeOutputError
from pipex.store.verify import Problem, ProblemKind, VerifyReport, verify

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
