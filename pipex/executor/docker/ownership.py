"""Giving a step's output back to the caller: containers run as root, pipex usually does not.

Files a step writes into the bind-mounted output and caches belong to root.
When pipex runs as root nothing is needed; otherwise they are ``chown -R``'d
to the caller before the container goes: in direct mode by an ``sh`` wrapper
around ``cmd`` (``owning_cmd``; it also traps the SIGTERM pipex sends on
timeout or cancel), in keeper mode by a root exec of ``kill_and_chown_cmd``.
"""

from __future__ import annotations

import shlex

from pipex.executor.base import Invocation

__all__ = ["WRAPPER_GRACE_SEC", "owned_paths", "owning_cmd", "kill_and_chown_cmd", "numeric_uid"]

#: Kills everything but PID 1 (the keeper, immune to SIGKILL from inside its
#: namespace), then gives the output and caches to the caller: owner, and
#: owner read/write (a step may leave mode 000 files, which the caller could
#: then neither read nor remove). Arguments: owner, then the paths. Used when
#: a step ends, times out or is cancelled: nothing of it may go on writing.
KILL_AND_CHOWN = 'kill -9 -1 2>/dev/null; chown -R "$0" "$@" 2>/dev/null; chmod -R u+rwX "$@" 2>/dev/null; true'
#: Main process wrapping ``cmd`` when the caller is not root: run it, then give
#: the output and caches to the caller; on SIGTERM (timeout/cancel) kill
#: everything else first. {owner} and {paths} are shell-quoted by `owning_cmd`.
_OWNING_WRAPPER = (
    # The trap comes first so a SIGTERM right after start is not lost (PID 1
    # ignores untrapped signals); the background child gets default handlers.
    "trap 'kill -9 -1 2>/dev/null; chown -R {owner} {paths} 2>/dev/null; chmod -R u+rwX {paths} 2>/dev/null; exit 143' TERM; "
    '"$@" & child=$!; '
    # When cmd ends, whatever it left running in the background dies *before* the
    # chown: else it could go on writing root-owned files nobody may remove.
    "wait $child; rc=$?; kill -9 -1 2>/dev/null; chown -R {owner} {paths} 2>/dev/null; chmod -R u+rwX {paths} 2>/dev/null; exit $rc"
)
WRAPPER_GRACE_SEC = 10.0  # how long the wrapper may take to kill and chown before SIGKILL  # how long the wrapper may take to kill and chown before SIGKILL


def owned_paths(inv: Invocation) -> list[str]:
    """The container paths whose files go back to the caller: the output and the read-write mounts (caches)."""
    return [inv.output_path, *(m.target for m in inv.mounts if not m.read_only)]


def kill_and_chown_cmd(owner: tuple[int, int], paths: list[str]) -> tuple[str, ...]:
    """The root exec that kills what a step left running and gives ``paths`` to ``owner``."""
    return ("sh", "-c", KILL_AND_CHOWN, f"{owner[0]}:{owner[1]}", *paths)


def owning_cmd(inv: Invocation, owner: tuple[int, int] | None) -> tuple[str, ...]:
    """``cmd``, wrapped in `_OWNING_WRAPPER` when its output must be given to ``owner``."""
    if owner is None:
        return inv.cmd
    paths = owned_paths(inv)
    script = _OWNING_WRAPPER.format(owner=f"{owner[0]}:{owner[1]}", paths=" ".join(shlex.quote(p) for p in paths))
    return ("sh", "-c", script, "sh", *inv.cmd)


def numeric_uid(user: str | None) -> int | None:
    if not user:
        return None
    head = user.split(":", 1)[0]
    return int(head) if head.isdigit() else None
