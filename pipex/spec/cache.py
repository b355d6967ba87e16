"""The validated-spec cache: normalised pipelines and configs pickled by a hash of what made them.

Layout: ``<cache dir>/spec-cache/<xxh3-128 hex>.pickle``, where the cache dir is
``$PIPEX_CACHE_DIR`` or ``platformdirs.user_cache_dir("pipex")``. The key
covers every byte that decides the result (file, schema, pipex version and
source stamps, config, env files, project root), so an entry is never
updated, only replaced; a stale one is simply never asked for again.
Entries are written to a temp file and renamed, so a reader sees a whole
pickle or none. Anything unreadable is treated as a miss. Each write keeps
only the newest ``MAX_ENTRIES`` entries, so edits do not grow it forever.

# NOTE: pickle is only safe because the directory is the user's own cache;
# nothing from a pipeline file is ever unpickled from elsewhere.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
from pathlib import Path
from types import MappingProxyType
from typing import Any

import xxhash

__all__ = ["cache_dir", "cache_key", "read", "write", "source_stamp"]

_FORMAT = b"pipex-spec-cache-1"
MAX_ENTRIES = 256


def cache_dir() -> Path:
    """Return the directory holding spec cache entries."""
    base = os.environ.get("PIPEX_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("pipex")
    return Path(base) / "spec-cache"


def cache_key(*parts: bytes) -> str:
    """Hash ``parts`` (length-prefixed, so boundaries matter) into a hex key."""
    digest = xxhash.xxh3_128(_FORMAT)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def source_stamp() -> bytes:
    """Stat stamps of pipex's spec and kit modules.

    The version alone misses edits in a development checkout; stats are cheap
    and make an edited loader or kit invalidate cached pipelines.
    """
    here = Path(__file__).resolve().parent
    stamps = []
    for directory in (here, here.parent / "kits"):
        try:
            entries = sorted(directory.glob("*.py"))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat()
            except OSError:
                continue
            stamps.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
    return "\n".join(stamps).encode()


def _mapping_proxy(mapping: dict[Any, Any]) -> MappingProxyType:
    """Rebuild a MappingProxyType when unpickling (the type itself has no importable name)."""
    return MappingProxyType(mapping)


def _reduce_mapping_proxy(proxy: MappingProxyType) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mapping_proxy, (dict(proxy),)


def read(key: str) -> Any | None:
    """Return the cached object for ``key``, or None when absent or unreadable."""
    try:
        data = (cache_dir() / f"{key}.pickle").read_bytes()
        return pickle.loads(data)
    except Exception:  # a corrupt or foreign entry is a miss, never an error
        return None


def write(key: str, value: Any) -> None:
    """Store ``value`` under ``key`` atomically; failures (read-only home...) are ignored."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    # Frozen model objects hold MappingProxyType, which pickle cannot handle natively.
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[MappingProxyType] = _reduce_mapping_proxy
    try:
        pickler.dump(value)
        import tempfile

        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
            os.replace(temp, directory / f"{key}.pickle")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _prune(directory)
    except Exception:  # caching is an optimisation; never fail a command over it
        return


def _prune(directory: Path) -> None:
    """Keep the newest MAX_ENTRIES entries; drop temp files a crash left an hour ago.

    Runs only after a miss (a write), so a hit never pays for it.
    """
    import time

    entries = []
    for entry in os.scandir(directory):
        try:
            info = entry.stat()
        except OSError:
            continue
        if entry.name.startswith(".tmp-"):
            if info.st_mtime < time.time() - 3600:
                Path(entry.path).unlink(missing_ok=True)
        elif entry.name.endswith(".pickle"):
            entries.append((info.st_mtime_ns, entry.path))
    if len(entries) > MAX_ENTRIES:
        for _, path in sorted(entries)[: len(entries) - MAX_ENTRIES]:
            Path(path).unlink(missing_ok=True)
