"""THE link-resolution rule: follow a path through symlinks the way the kernel would, and say if it leaves the root.

Used on disk when an output is ingested (a link that leads outside the output
is refused) and in a stored tree when ``cat``/``export`` read one (a link is
followed only while it stays inside). Resolution goes component by
component, following links met on the way: ``d -> .`` then ``l -> d/../x``
leaves the root although ``d/../x`` looks harmless. ``kind_of`` tells what a
path (a tuple of components under the root) is; nothing else is touched.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_LINK_HOPS", "Kind", "Outcome", "LinkWalk", "walk_path"]

MAX_LINK_HOPS = 40  # what Linux allows before ELOOP


class Kind(enum.Enum):
    """What one path is."""

    DIR = "dir"
    FILE = "file"  # anything that is neither a directory nor a link
    LINK = "link"


class Outcome(enum.Enum):
    """How a walk ended."""

    INSIDE = "inside"  # it stays under the root (perhaps at a name that is not there: see ``missing``)
    ESCAPES = "escapes"  # '..' climbs above the root
    ABSOLUTE = "absolute"  # a link on the way has an absolute target
    LOOPS = "loops"  # more than MAX_LINK_HOPS links
    CYCLE = "cycle"  # a true cycle (a -> b -> a): the kernel answers ELOOP, it never resolves


@dataclass(frozen=True)
class LinkWalk:
    """Where a walk got to: its components, the first missing name, the last link followed."""

    outcome: Outcome
    parts: tuple[bytes, ...]
    missing: bytes | None = None  # the first name that is not there, or lies under a non-directory
    not_dir: bytes | None = None  # that non-directory, when that is why
    via: bytes | None = None  # the last link followed
    via_target: bytes | None = None  # and its target


#: ``components -> (kind, link target)``; None when nothing is there.
KindOf = Callable[[tuple[bytes, ...]], "tuple[Kind, bytes | None] | None"]


def walk_path(
    start: tuple[bytes, ...],
    path: bytes,
    kind_of: KindOf,
    *,
    follow_last: bool = True,
    stop_at_missing: bool = False,
) -> LinkWalk:
    """Resolve ``path`` relative to the directory ``start`` (components under the root).

    ``follow_last=False`` leaves a final link unresolved (like ``lstat``).
    After a missing name the rest is still checked lexically (a dangling
    link may not climb out either), unless ``stop_at_missing``.
    """
    parts = list(start)
    todo = list(reversed(path.split(b"/")))
    seen: set[tuple[tuple[bytes, ...], tuple[bytes, ...]]] = set()
    hops = 0
    missing: bytes | None = None
    not_dir: bytes | None = None
    via: bytes | None = None
    via_target: bytes | None = None
    here: Kind | None = Kind.DIR  # what parts names now (the start is a directory)

    def end(outcome: Outcome) -> LinkWalk:
        return LinkWalk(outcome, tuple(parts), missing, not_dir, via, via_target)

    while todo:
        part = todo.pop()
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not parts:
                return end(Outcome.ESCAPES)
            parts.pop()
            here = Kind.DIR  # every prefix walked so far is a directory: only the last name may not be
            continue
        if missing is None and here is not Kind.DIR:
            not_dir = b"/".join(parts)
            missing = b"/".join([*parts, part])
        parts.append(part)
        if missing is not None:
            if stop_at_missing:
                return end(Outcome.INSIDE)
            continue
        found = kind_of(tuple(parts))
        if found is None:
            missing = b"/".join(parts)
            if stop_at_missing:
                return end(Outcome.INSIDE)
            continue
        here, target = found
        if here is Kind.LINK and (todo or follow_last):
            state = (tuple(parts), tuple(todo))
            if state in seen:
                return end(Outcome.CYCLE)
            seen.add(state)
            hops += 1
            if hops > MAX_LINK_HOPS:
                return end(Outcome.LOOPS)
            via, via_target = b"/".join(parts), target or b""
            if via_target.startswith(b"/"):
                return end(Outcome.ABSOLUTE)
            parts.pop()
            here = Kind.DIR
            todo.extend(reversed(via_target.split(b"/")))
    return end(Outcome.INSIDE)
