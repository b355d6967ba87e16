"""Merge a step's own fields over what its kit generated."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["merge_step"]


def _by(items: list[Any], key: str) -> dict[Any, Any]:
    return {item.get(key) if isinstance(item, Mapping) else id(item): item for item in items}


def _merge_list(kit_items: Any, user_items: Any, key: str) -> list[Any]:
    """Kit entries first; a user entry with the same ``key`` replaces the kit's."""
    merged = _by(list(kit_items or []), key)
    merged.update(_by(list(user_items or []), key))
    return list(merged.values())


def _merge_setup(kit_setup: Mapping[str, Any] | None, user_setup: Mapping[str, Any]) -> dict[str, Any]:
    """User setup runs after the kit's: commands chained, caches merged, network if either asks."""
    if not kit_setup:
        return dict(user_setup)
    merged = dict(kit_setup)
    kit_cmd, user_cmd = kit_setup.get("cmd"), user_setup.get("cmd")
    if isinstance(kit_cmd, list):
        kit_cmd = " ".join(_quote(word) for word in kit_cmd)
    if isinstance(user_cmd, list):
        user_cmd = " ".join(_quote(word) for word in user_cmd)
    merged["cmd"] = f"{kit_cmd}\n{user_cmd}"
    merged["caches"] = _merge_list(kit_setup.get("caches"), user_setup.get("caches"), "name")
    if "allowNetwork" in user_setup:
        merged["allowNetwork"] = bool(user_setup["allowNetwork"]) or bool(kit_setup.get("allowNetwork"))
    return merged


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def merge_step(user: Mapping[str, Any], generated: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(step, kit_env)``: the kit's step with the user's fields merged over it.

    ``env`` is kept apart because kit env is the lowest layer of the env
    precedence (below ``--env-file``); ``caches`` merge by name and
    ``mounts``/``sources`` by container path (user wins); ``setup`` chains
    (see ``_merge_setup``); any other user field replaces the kit's.
    """
    step = {key: value for key, value in generated.items() if key != "env"}
    kit_env = dict(generated.get("env") or {})
    for key, value in user.items():
        if key in ("uses", "with", "env"):
            continue
        if key == "caches":
            step[key] = _merge_list(step.get(key), value, "name")
        elif key in ("mounts", "sources"):
            step[key] = _merge_list(step.get(key), value, "container")
        elif key == "setup" and isinstance(value, Mapping):
            step[key] = _merge_setup(step.get("setup"), value)
        else:
            step[key] = value
    if "env" in user:
        step["env"] = user["env"]
    return step, kit_env
