"""Find a kit by name: .pipex.yml aliases and local files, then built-ins, then entry points."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from pipex.spec.kit import ANY_PARAMS, Kit, KitError

__all__ = ["BUILTIN_KITS", "ENTRY_POINT_GROUP", "ResolvedKit", "as_kit", "kit_names", "resolve_kit"]

BUILTIN_KITS = {"shell": "pipex.kits.shell", "python": "pipex.kits.python", "node": "pipex.kits.node"}
ENTRY_POINT_GROUP = "pipex.kits"


@dataclass(frozen=True)
class ResolvedKit:
    """A kit plus the project's defaults for it.

    ``files`` are local kit files it came from (part of the spec cache's
    dependencies); ``cacheable`` is False for entry-point kits, whose code the
    cache key cannot cover.
    """

    kit: Kit
    image: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    files: tuple[Path, ...] = ()
    cacheable: bool = True


def as_kit(name: str, obj: Any) -> Kit:
    """Adapt a Kit, a module (``expand`` + ``WITH_SCHEMA``) or a callable to a Kit."""
    if isinstance(obj, Kit):
        return obj
    expand = getattr(obj, "expand", None)
    if callable(expand):
        return Kit(name, expand, getattr(obj, "WITH_SCHEMA", ANY_PARAMS))
    if callable(obj):
        return Kit(name, obj, getattr(obj, "with_schema", ANY_PARAMS))
    msg = f"kit '{name}' is neither a Kit, a module with expand(), nor a callable"
    raise KitError(msg)


def _load_file(name: str, path: Path) -> Kit:
    """Import a local kit file under a private module name."""
    if not path.is_file():
        msg = f"kit '{name}': file {path} does not exist"
        raise KitError(msg)
    spec = importlib.util.spec_from_file_location(f"pipex_local_kit_{name.replace('-', '_').replace('.', '_')}", path)
    if spec is None or spec.loader is None:
        msg = f"kit '{name}': cannot load {path}"
        raise KitError(msg)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # user code: report it as one line, not a traceback
        msg = f"kit '{name}': loading {path} failed: {type(error).__name__}: {error}"
        raise KitError(msg) from None
    if not callable(getattr(module, "expand", None)):
        msg = f"kit '{name}': {path} defines no expand(params, ctx) function"
        raise KitError(msg)
    return as_kit(name, module)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def kit_names(config: Any = None) -> list[str]:
    """All kit names known without importing entry points' code (for suggestions)."""
    names = set(BUILTIN_KITS)
    if config is not None:
        names.update(config.kits)
    try:
        names.update(_entry_points())
    except Exception:  # broken metadata must not hide the real error
        pass
    return sorted(names)


def resolve_kit(name: str, config: Any = None) -> ResolvedKit:
    """Return the kit ``name`` means in this project, following ``.pipex.yml`` aliases.

    Settings on an alias win over those of the kit it names. Raises KitError for
    an unknown kit (with a suggestion), an alias loop or a broken kit file.
    """
    image: str | None = None
    defaults: dict[str, Any] = {}
    seen: list[str] = []
    current = name
    while True:
        if current in seen:
            msg = f"kit alias loop: {' -> '.join([*seen, current])}"
            raise KitError(msg)
        seen.append(current)
        entry = config.kit(current) if config is not None else None
        if entry is None:
            break
        image = image or entry.image
        defaults = {**entry.defaults, **defaults}
        if entry.file is not None:
            kit = _load_file(current, entry.file)
            return ResolvedKit(kit, image, MappingProxyType(defaults), (entry.file,))
        if entry.uses is None:
            break
        current = entry.uses
    if current in BUILTIN_KITS:
        module = importlib.import_module(BUILTIN_KITS[current])
        return ResolvedKit(as_kit(current, module), image, MappingProxyType(defaults))
    try:
        points = _entry_points()
    except Exception:
        points = {}
    if current in points:
        try:
            obj = points[current].load()
        except Exception as error:  # third-party code
            msg = f"kit '{current}': loading entry point failed: {type(error).__name__}: {error}"
            raise KitError(msg) from None
        return ResolvedKit(as_kit(current, obj), image, MappingProxyType(defaults), cacheable=False)
    from pipex.spec.validate import suggest

    msg = f"unknown kit '{current}'{suggest(current, kit_names(config))}"
    raise KitError(msg)
