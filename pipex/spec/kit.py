"""Kits: a kit turns a step's ``with`` parameters into a raw step (image, cmd, setup...).

A kit is a :class:`Kit`: a name, a JSON schema for its ``with`` mapping, and
``expand(params, ctx) -> dict`` returning a step in the pipeline file's own
format (``image``, ``cmd``, ``setup``, ``env``, ``caches``, ``mounts``,
``sources``...), which the loader validates with the pipeline schema. Raise
:class:`KitError` naming the parameter for a bad value.

Custom kits: a Python file named in ``.pipex.yml`` (``kits: {mykit: {file:
kits/mykit.py}}``) defining ``expand(params, ctx)`` and optionally
``WITH_SCHEMA``; or an object (a Kit, a module, or a callable with an optional
``with_schema`` attribute) registered under the ``pipex.kits`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from pipex.errors import PipexError

__all__ = ["Kit", "KitContext", "KitError", "ANY_PARAMS"]

ANY_PARAMS: Mapping[str, Any] = MappingProxyType({"type": "object"})


class KitError(PipexError):
    """Raised by a kit when a ``with`` parameter is invalid; ``param`` names it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class KitContext:
    """What a kit knows besides its parameters.

    ``image`` is the default image set for this kit in ``.pipex.yml`` (None if
    unset); ``root`` is the project root. Kits look at project files only
    through :meth:`is_file`, so the spec cache knows what they depend on.
    """

    step_id: str
    root: Path
    kit: str
    image: str | None = None
    probed: list[Path] = field(default_factory=list, compare=False, repr=False)

    def is_file(self, relative: str) -> bool:
        """Whether ``relative`` (to the project root) is a file; recorded so that
        adding or removing it invalidates the cached pipeline."""
        path = self.root / relative
        self.probed.append(path)
        return path.is_file()


@dataclass(frozen=True)
class Kit:
    """A named step generator with a JSON schema for its ``with`` parameters."""

    name: str
    expand: Callable[[Mapping[str, Any], KitContext], dict[str, Any]]
    with_schema: Mapping[str, Any] = field(default_factory=lambda: ANY_PARAMS)
