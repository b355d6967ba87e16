"""Load a pipeline: find the file, parse, validate (schema, kits, semantics), normalise; cache the result."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import xxhash

from pipex import __version__
from pipex.errors import SpecError, SpecErrors, shorten
from pipex.spec import cache
from pipex.spec.model import Pipeline
from pipex.spec.paths import host_paths_ok, slugify
from pipex.spec.files import read_input_file

__all__ = ["PIPELINE_FILES", "find_pipeline_file", "load_pipeline"]

PIPELINE_FILES = ("pipeline.yml", "pipeline.yaml", "pipeline.json")


def find_pipeline_file(path: Path | None = None) -> Path:
    """Return the pipeline file ``path`` names: the file itself, or the first of
    ``pipeline.yml``, ``pipeline.yaml``, ``pipeline.json`` in the directory
    (default: the current directory). Raises SpecError when there is none."""
    target = Path.cwd() if path is None else Path(path)
    try:
        if target.is_dir():
            for name in PIPELINE_FILES:
                candidate = target / name
                if candidate.is_file():
                    return candidate
            where = "the current directory" if path is None else f"'{target}'"
            msg = f"no pipeline file ({', '.join(PIPELINE_FILES)}) in {where}"
            raise SpecError(msg)
        if not target.exists():
            msg = "no such file or directory"
            raise SpecError(msg, file=shorten(str(target)))
    except OSError as error:  # a name too long, a loop of links, no permission
        raise SpecError(f"cannot read: {error.strerror or error}", file=shorten(str(target))) from None
    return target


_ABSENT = "absent"


@dataclass(frozen=True)
class _Dependency:
    """A file read while loading (an envFile or kit file); re-checked on a cache hit."""

    path: str
    size: int
    mtime_ns: int
    digest: str

    @classmethod
    def of(cls, path: Path) -> _Dependency:
        """Record a file's stat and content hash, or that it is absent (a kit probed for it)."""
        try:
            info = path.stat()
            data = read_input_file(path)
        except OSError:
            return cls(str(path), -1, -1, _ABSENT)
        return cls(str(path), info.st_size, info.st_mtime_ns, xxhash.xxh3_128_hexdigest(data))

    def unchanged(self) -> bool:
        """True when the file is as recorded (stat first; hash only when the stat moved)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return self.digest == _ABSENT
        if self.digest == _ABSENT:
            return False
        if (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns):
            return True
        try:
            return xxhash.xxh3_128_hexdigest(read_input_file(self.path)) == self.digest
        except OSError:
            return False


@dataclass(frozen=True)
class _CacheEntry:
    pipeline: Pipeline
    dependencies: tuple[_Dependency, ...]


def load_pipeline(
    path: Path | None = None,
    *,
    env_files: Sequence[Path | str] = (),
    config: Any = None,
) -> Pipeline:
    """Load, validate and normalise the pipeline at ``path`` (file or directory; default cwd).

    ``env_files`` are the CLI ``--env-file`` files (below step ``envFile`` and
    ``env``, above kit defaults). ``config`` is a :class:`pipex.spec.config.Config`;
    by default ``.pipex.yml`` next to the pipeline file is read. Raises
    SpecError (one problem) or SpecErrors (several), each located as
    ``FILE:LINE:COL: json.path: message``. The result is cached (see
    :mod:`pipex.spec.cache`); a hit re-runs only the path checks.
    """
    from pipex.spec.document import display_path

    file = find_pipeline_file(path).absolute()
    root = file.parent.resolve()
    try:
        source = read_input_file(file)
    except OSError as error:
        msg = f"cannot read file: {error.strerror or error}"
        raise SpecError(msg, file=display_path(file)) from None
    key = _cache_key(file, root, source, env_files, config)
    hit = cache.read(key)
    if isinstance(hit, _CacheEntry) and _still_valid(hit, root):
        return hit.pipeline
    pipeline, dependencies, cacheable = _load(file, root, source, env_files, config)
    if cacheable:
        # NOTE: dependencies are stamped after loading: an env or kit file
        # edited in the instant between its read and its stamp leaves a stale
        # entry until that file changes again. Acceptable for hand-edited files.
        cache.write(key, _CacheEntry(pipeline, tuple(_Dependency.of(p) for p in dependencies)))
    return pipeline


def _cache_key(file: Path, root: Path, source: bytes, env_files: Sequence[Path | str], config: Any) -> str:
    from pipex.spec.config import find_config_file
    from pipex.spec.schemas import PIPELINE_SCHEMA, schema_bytes

    if config is not None:
        config_bytes = b"given:" + bytes(getattr(config, "source", b"")) + str(getattr(config, "file", "")).encode()
    else:
        config_file = find_config_file(root)
        try:
            config_bytes = read_input_file(config_file) if config_file else b""
        except OSError:
            config_bytes = b"<unreadable>"  # load_config says why
    parts = [
        b"pipeline",
        source,
        str(file).encode(),
        str(root).encode(),
        schema_bytes(PIPELINE_SCHEMA),
        __version__.encode(),
        cache.source_stamp(),
        config_bytes,
    ]
    for name in env_files:
        parts.append(str(name).encode())
        try:
            parts.append(read_input_file(name))
        except OSError:
            parts.append(b"<unreadable>")
    return cache.cache_key(*parts)


def _still_valid(entry: _CacheEntry, root: Path) -> bool:
    """The cheap re-checks of a cache hit: files read while loading, and host paths."""
    if not all(dep.unchanged() for dep in entry.dependencies):
        return False
    hosts = {m.host for step in entry.pipeline.steps for m in (*step.mounts, *step.sources)}
    return host_paths_ok(hosts, root)


def _load(
    file: Path, root: Path, source: bytes, env_files: Sequence[Path | str], config: Any
) -> tuple[Pipeline, list[Path], bool]:
    """The uncached path: parse, schema, kits, semantic checks."""
    from pipex.spec.config import load_config
    from pipex.spec.document import display_path, parse_document
    from pipex.spec.envfile import merge_env_files
    from pipex.spec.expand import expand_steps
    from pipex.spec.normalize import check_graph
    from pipex.spec.schemas import PIPELINE_SCHEMA, load_schema
    from pipex.spec.validate import schema_errors

    doc = parse_document(file, shown=display_path(file), data=source)
    data = doc.data
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"{type(data).__name__} {data!r}"
        msg = f"expected a mapping with 'steps' at the top level, got {kind}"
        raise doc.error(msg)
    _raise(schema_errors(data, load_schema(PIPELINE_SCHEMA), doc))
    if config is None:
        config = load_config(root)
    cli_env = merge_env_files(env_files)
    expanded = expand_steps(data["steps"], doc, root, cli_env, config)
    errors = expanded.errors + check_graph(
        expanded.steps, doc, data["steps"], expanded.positions, expanded.unbuilt
    )
    _raise(errors)
    pipeline_id = data.get("id") or slugify(data.get("name") or "") or slugify(root.name) or "pipeline"
    pipeline = Pipeline(id=pipeline_id, root=root, file=file, steps=tuple(expanded.steps), name=data.get("name"))
    return pipeline, expanded.dependencies, expanded.cacheable


def _raise(errors: list[SpecError]) -> None:
    if not errors:
        return
    errors = sorted(errors, key=lambda e: (e.file or "", e.line or 0, e.column or 0))
    raise errors[0] if len(errors) == 1 else SpecErrors(errors)
