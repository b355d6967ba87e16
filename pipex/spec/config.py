"""Project configuration: ``.pipex.yml`` at the project root, validated by its own schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from pipex.errors import SpecError, SpecErrors
from pipex.spec.files import read_input_file

__all__ = ["CONFIG_FILES", "Config", "KitConfig", "find_config_file", "load_config"]

CONFIG_FILES = (".pipex.yml", ".pipex.yaml")


@dataclass(frozen=True)
class KitConfig:
    """Settings of one kit name in ``.pipex.yml`` ``kits:``.

    ``uses`` makes the name an alias of another kit; ``file`` (absolute, resolved
    against the project root) loads a local kit; ``image`` and ``defaults``
    (the ``with`` mapping) are defaults a step's own ``with`` overrides.
    """

    name: str
    uses: str | None = None
    file: Path | None = None
    image: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    """The project configuration; every field has a usable default when there is no file."""

    root: Path
    file: Path | None = None
    kits: Mapping[str, KitConfig] = field(default_factory=lambda: MappingProxyType({}))
    store: Path | None = None
    concurrency: int | None = None
    ca_bundle: Path | None = None
    detach: bool = False
    workspace: str | None = None
    remote: Mapping[str, Any] | None = None  # the raw ``remote:`` setting (pipex.remote.config parses it)
    executor: Mapping[str, Any] | None = None  # the raw ``executor:`` setting (pipex.remote.cluster_config parses it)
    source: bytes = b""

    def kit(self, name: str) -> KitConfig | None:
        """Return the settings for kit ``name``, or None."""
        return self.kits.get(name)


def find_config_file(root: Path) -> Path | None:
    """Return ``.pipex.yml`` (or ``.pipex.yaml``) in ``root`` if it exists."""
    for name in CONFIG_FILES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def _host_path(value: str, root: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def load_config(project_root: Path) -> Config:
    """Load and validate ``.pipex.yml`` in ``project_root``; an absent file gives defaults.

    Raises SpecError/SpecErrors located like pipeline errors. Parsed configs are
    kept in the spec cache (keyed by the file bytes), so an unchanged file
    imports neither yaml nor jsonschema.
    """
    # Absolute, like Pipeline.root, so relative settings (store, kit files) do not depend on the cwd later.
    root = Path(project_root).resolve()
    file = find_config_file(root)
    if file is None:
        return Config(root=root)
    try:
        source = read_input_file(file)
    except OSError as error:
        msg = f"cannot read file: {error.strerror or error}"
        raise SpecError(msg, file=str(file)) from None
    from pipex import __version__
    from pipex.spec import cache
    from pipex.spec.schemas import CONFIG_SCHEMA, schema_bytes

    key = cache.cache_key(b"config", source, schema_bytes(CONFIG_SCHEMA), __version__.encode(), str(root).encode())
    hit = cache.read(key)
    if isinstance(hit, Config) and hit.file == file:
        return hit
    config = _parse(file, root, source)
    cache.write(key, config)
    return config


def _parse(file: Path, root: Path, source: bytes) -> Config:
    from pipex.spec.document import display_path, parse_document
    from pipex.spec.schemas import CONFIG_SCHEMA, load_schema
    from pipex.spec.validate import schema_errors

    doc = parse_document(file, shown=display_path(file), data=source)
    data = doc.data
    if not isinstance(data, dict):
        msg = "expected a mapping of settings at the top level"
        raise doc.error(msg)
    errors = schema_errors(data, load_schema(CONFIG_SCHEMA), doc)
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    kits = {}
    for name, raw in (data.get("kits") or {}).items():
        kits[name] = KitConfig(
            name=name,
            uses=raw.get("uses"),
            file=_host_path(raw["file"], root) if "file" in raw else None,
            image=raw.get("image"),
            defaults=MappingProxyType(dict(raw.get("with") or {})),
        )
    return Config(
        root=root,
        file=file,
        kits=MappingProxyType(kits),
        store=_host_path(data["store"], root) if "store" in data else None,
        concurrency=data.get("concurrency"),
        ca_bundle=_host_path(data["caBundle"], root) if "caBundle" in data else None,
        detach=bool(data.get("detach", False)),
        workspace=data.get("workspace"),
        remote=_remote_setting(data.get("remote")),
        executor=_executor_setting(data.get("executor")),
        source=source,
    )


def _executor_setting(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    return MappingProxyType({"kind": raw} if isinstance(raw, str) else dict(raw))


def _remote_setting(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    return MappingProxyType({"url": raw} if isinstance(raw, str) else dict(raw))
