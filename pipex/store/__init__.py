"""The content-addressed store: objects, trees, runs, refs, checkouts; gc, prune and verify."""

from __future__ import annotations

from pipex._lazy import lazy_exports
from pipex.store.objects import hash_bytes, hash_file
from pipex.store.runs import RunMeta, RunNotFoundError, RunRecord, RunStatus, run_id_for
from pipex.store.store import Store, default_root
from pipex.store.trees import EntryType, Tree, TreeEntry, UnsafeOutputError

# NOTE: the verbs gc, prune and verify are *not* re-exported here: their
# modules are named ``pipex.store.gc`` and ``pipex.store.verify``, and once a
# submodule is imported Python binds it on the package, shadowing any function
# of the same name (``pipex.api.gc()`` raised TypeError depending on import
# order). Import them from their modules: ``from pipex.store.gc import gc``.
# Their report types are lazy: a no-op plan never needs them (~20 ms).
_LAZY = {
    "IngestResult": "pipex.store.ingest",
    "GcReport": "pipex.store.gc",
    "PruneReport": "pipex.store.gc",
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
    "RunMeta",
    "RunStatus",
    "run_id_for",
    "RunNotFoundError",
    "UnsafeOutputError",
    "default_root",
    "hash_bytes",
    "hash_file",
    "GcReport",
    "PruneReport",
    "VerifyReport",
    "Problem",
    "ProblemKind",
]
