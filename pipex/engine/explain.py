"""Why a step must run: the difference between two fingerprint documents, as reasons a user reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipex.engine.hosts import HostHasher, diff_files

__all__ = ["explain"]

# How many changed files a reason names before "and N more".
_MAX_FILES_NAMED = 3


def explain(previous: Mapping[str, Any] | None, document: Mapping[str, Any], *, host_hasher: HostHasher | None = None) -> list[str]:
    """Return why ``document`` differs from the ``previous`` one, most telling first.

    ``host_hasher`` provides file listings of earlier host trees so that changed
    files can be named; without one (or when the listing is gone) the reason
    names the mount instead.
    """
    if previous is None:
        return ["never built"]
    if previous.get("format") != document.get("format"):
        return ["fingerprint format changed"]
    reasons: list[str] = []
    ref = document.get("imageRef")
    if previous.get("image") != document.get("image"):
        if previous.get("imageRef") == ref:
            reasons.append(f"image {ref} now points to another image")
        else:
            reasons.append(f"image changed: {previous.get('imageRef')} -> {ref}")
    if previous.get("cmd") != document.get("cmd"):
        reasons.append("cmd changed")
    if previous.get("setup") != document.get("setup"):
        reasons.append("setup changed")
    old_env, new_env = previous.get("env") or {}, document.get("env") or {}
    for name in sorted(set(old_env) | set(new_env)):
        if name not in old_env:
            reasons.append(f"env {name} added")
        elif name not in new_env:
            reasons.append(f"env {name} removed")
        elif old_env[name] != new_env[name]:
            reasons.append(f"env {name} changed")
    if previous.get("outputPath") != document.get("outputPath"):
        reasons.append("output path changed")
    if previous.get("network") != document.get("network"):
        reasons.append("network changed")
    old_inputs, new_inputs = previous.get("inputs") or {}, document.get("inputs") or {}
    for name in sorted(set(old_inputs) | set(new_inputs), key=lambda n: (n not in new_inputs, n)):
        if name not in old_inputs:
            reasons.append(f"input '{name}' added")
        elif name not in new_inputs:
            reasons.append(f"input '{name}' removed")
        elif old_inputs[name].get("tree") != new_inputs[name].get("tree"):
            reasons.append(f"input '{name}' changed")
        elif old_inputs[name] != new_inputs[name]:
            reasons.append(f"input '{name}' options changed")
    reasons.extend(_explain_host(previous, document, host_hasher))
    if previous.get("caches") != document.get("caches"):
        reasons.append("caches changed")
    for key, label in (("user", "user"), ("runtime", "runtime"), ("readOnlyRootfs", "readOnlyRootfs"), ("capDrop", "capDrop")):
        if previous.get(key) != document.get(key):
            reasons.append(f"{label} changed")
    return reasons or ["fingerprint changed"]


def _explain_host(previous: Mapping[str, Any], document: Mapping[str, Any], hasher: HostHasher | None) -> list[str]:
    reasons: list[str] = []
    files: list[str] = []
    unnamed: list[str] = []
    for kind in ("mounts", "sources"):
        old_list = previous.get(kind) or []
        new_list = document.get(kind) or []
        if _shape(old_list) != _shape(new_list):
            reasons.append(f"{kind} changed")
            continue
        for old, new in zip(old_list, new_list):
            if old.get("tree") == new.get("tree"):
                continue
            before = hasher.manifest(old["tree"]) if hasher and old.get("tree") else None
            after = hasher.manifest(new["tree"]) if hasher and new.get("tree") else None
            if before is None or after is None:
                label = f"{kind[:-1]} '{new.get('host')}' changed"
                if label not in unnamed:
                    unnamed.append(label)
                continue
            for path in diff_files(before, after):
                if path not in files:
                    files.append(path)
    named = [f"file {path} changed" for path in files[:_MAX_FILES_NAMED]]
    if len(files) > _MAX_FILES_NAMED:
        named.append(f"and {len(files) - _MAX_FILES_NAMED} more files changed")
    return reasons + named + unnamed


def _shape(items: list[Mapping[str, Any]]) -> list[tuple[Any, Any]]:
    """What a mounts/sources list maps (host -> container), without the trees."""
    return [(m.get("host"), m.get("container")) for m in items]
