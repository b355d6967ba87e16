"""The loaded pipeline: frozen dataclasses the planner and the engine consume; a step as JSON for a job.

Everything here is already validated and normalised: kits are expanded, env is
resolved (step ``env`` > step ``envFile`` > ``--env-file`` > kit defaults), host
paths are POSIX paths relative to the project root, container paths are absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

__all__ = [
    "InputRef",
    "PathMapping",
    "CacheSpec",
    "SetupSpec",
    "Resources",
    "SecretSpec",
    "Step",
    "Pipeline",
    "step_to_dict",
    "step_from_dict",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class InputRef:
    """An upstream step whose output is mounted read-only at ``/input/<step>/``."""

    step: str
    copy_to_output: bool = False
    optional: bool = False


@dataclass(frozen=True)
class PathMapping:
    """A host directory or file (relative to the project root) and where it appears in the container."""

    host: str
    container: str


@dataclass(frozen=True)
class CacheSpec:
    """A persistent read-write cache (``caches/<ws>/<name>/``) mounted at ``path``."""

    name: str
    path: str
    exclusive: bool = False


@dataclass(frozen=True)
class SetupSpec:
    """A command run before ``cmd`` in the same container, e.g. to install packages."""

    cmd: tuple[str, ...]
    caches: tuple[CacheSpec, ...] = ()
    allow_network: bool = False


@dataclass(frozen=True)
class Resources:
    """Container limits; ``memory`` is a Docker size string such as ``512m``."""

    cpus: float | None = None
    memory: str | None = None
    pids: int | None = None


@dataclass(frozen=True)
class SecretSpec:
    """A secret read from a host file or env var, mounted at ``/run/secrets/<name>``."""

    name: str
    file: str | None = None
    env: str | None = None


@dataclass(frozen=True)
class Step:
    """One build rule, run in its own container.

    ``cmd`` and ``setup.cmd`` are argv tuples: a string ``cmd`` in the file
    becomes ``("sh", "-e", "-c", string)``.
    """

    id: str
    image: str
    cmd: tuple[str, ...]
    name: str | None = None
    setup: SetupSpec | None = None
    inputs: tuple[InputRef, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    output_path: str = "/output"
    mounts: tuple[PathMapping, ...] = ()
    sources: tuple[PathMapping, ...] = ()
    caches: tuple[CacheSpec, ...] = ()
    condition: str | None = None
    timeout_sec: float | None = None
    retries: int = 0
    retry_delay_ms: int = 5000
    allow_failure: bool = False
    allow_network: bool = False
    user: str | None = None
    read_only_rootfs: bool = False
    cap_drop: tuple[str, ...] = ()
    runtime: str | None = None
    resources: Resources | None = None
    secrets: tuple[SecretSpec, ...] = ()
    kit: str | None = None

    @property
    def all_caches(self) -> tuple[CacheSpec, ...]:
        """Step caches and setup caches together, each name once."""
        seen: dict[str, CacheSpec] = {}
        for cache in (*self.caches, *(self.setup.caches if self.setup else ())):
            seen.setdefault(cache.name, cache)
        return tuple(seen.values())


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: its steps in file order and where it came from."""

    id: str
    root: Path
    file: Path
    steps: tuple[Step, ...]
    name: str | None = None

    def step(self, step_id: str) -> Step:
        """Return the step with this id (KeyError if there is none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def step_ids(self) -> tuple[str, ...]:
        """Step ids in file order."""
        return tuple(step.id for step in self.steps)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def step_to_dict(step: Step) -> dict[str, Any]:
    """A step as JSON-ready data (field names as in the model): what a serialised step job carries."""
    doc: dict[str, Any] = _plain(step)
    return doc


def step_from_dict(doc: Mapping[str, Any]) -> Step:
    """The Step that ``step_to_dict`` made ``doc`` of."""
    values = dict(doc)
    setup = values.get("setup")
    values["cmd"] = tuple(values["cmd"])
    values["setup"] = (
        SetupSpec(tuple(setup["cmd"]), tuple(CacheSpec(**c) for c in setup.get("caches", ())), bool(setup.get("allow_network")))
        if setup
        else None
    )
    values["inputs"] = tuple(InputRef(**item) for item in values.get("inputs", ()))
    values["env"] = MappingProxyType(dict(values.get("env") or {}))
    values["mounts"] = tuple(PathMapping(**item) for item in values.get("mounts", ()))
    values["sources"] = tuple(PathMapping(**item) for item in values.get("sources", ()))
    values["caches"] = tuple(CacheSpec(**item) for item in values.get("caches", ()))
    values["cap_drop"] = tuple(values.get("cap_drop", ()))
    values["resources"] = Resources(**values["resources"]) if values.get("resources") else None
    values["secrets"] = tuple(SecretSpec(**item) for item in values.get("secrets", ()))
    return Step(**values)
