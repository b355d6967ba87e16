"""Fingerprints: a step's canonical JSON document -> xxh3-128.

The fingerprint document
------------------------
``step_document`` builds one dict per step holding everything that can change
what the step produces (DESIGN.md §4)::

    {"format": 2,
     "image": "<resolved image id>", "imageRef": "python:3.12-slim",
     "cmd": [...], "setup": {"cmd": [...], "network": false} | null,
     "env": {...}, "outputPath": "/output", "network": false,
     "inputs": {"fetch": {"tree": "<tree id>|null", "copyToOutput": false, "optional": false}},
     "mounts":  [{"host": "data", "container": "/data", "tree": "<host tree hash>"}],
     "sources": [{"host": "src", "container": "/src", "tree": "<host tree hash>"}],
     "caches": [["pip", "/root/.cache/pip"]],
     "user": null, "runtime": null, "readOnlyRootfs": false, "capDrop": []}

Host paths are relative to the project root, so moving the project does not
change a fingerprint. Inputs are recorded by *tree id* (content), never by run
id: a step that re-runs and yields the same output leaves its dependants'
fingerprints unchanged (early cutoff). Timeouts, retries, allowFailure, secrets,
display names, resources, proxies and CA bundles are left out: they do not
change what a successful run produces.

``imageRef`` is recorded (so the planner can say *which* tag moved) but is not
hashed: the same image id pulled under a mirror's name gives the same results.

Host paths are hashed by ``pipex.engine.hosts`` (a stat cache).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

import xxhash

if TYPE_CHECKING:
    from pipex.spec.model import Step

__all__ = ["FORMAT_VERSION", "canonical_json", "fingerprint_of", "step_document", "host_paths"]

#: Bump when the document's shape or the tree-hash rules change: every step rebuilds.
FORMAT_VERSION = 2  # 2: string cmds run with sh -e; directories are part of host trees

# Keys recorded in the document for explanation but not hashed (see module docstring).
_UNHASHED_KEYS = frozenset({"imageRef"})



def canonical_json(doc: Any) -> bytes:
    """Return ``doc`` as canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint_of(doc: Mapping[str, Any]) -> str:
    """Return the fingerprint (xxh3-128 hex) of a step document; ``imageRef`` is not hashed."""
    hashed = {key: value for key, value in doc.items() if key not in _UNHASHED_KEYS}
    return xxhash.xxh3_128_hexdigest(canonical_json(hashed))


def host_paths(step: Step) -> tuple[str, ...]:
    """Return the distinct host paths a step mounts or copies in, in declaration order."""
    seen: dict[str, None] = {}
    for mapping in (*step.mounts, *step.sources):
        seen.setdefault(mapping.host, None)
    return tuple(seen)


def step_document(
    step: Step,
    *,
    image_id: str,
    input_trees: Mapping[str, str | None],
    host_trees: Mapping[str, str],
) -> dict[str, Any]:
    """Return the fingerprint document of ``step``.

    ``input_trees`` maps every input step id to its output tree id (``None`` for
    an optional input that was skipped); ``host_trees`` maps every host path of
    ``host_paths(step)`` to its tree hash.
    """
    inputs: dict[str, dict[str, Any]] = {}
    for ref in step.inputs:
        if ref.step not in input_trees:
            msg = f"step '{step.id}': no tree given for input '{ref.step}'"
            raise KeyError(msg)
        inputs[ref.step] = {
            "tree": input_trees[ref.step],
            "copyToOutput": ref.copy_to_output,
            "optional": ref.optional,
        }
    setup = None
    if step.setup is not None:
        setup = {"cmd": list(step.setup.cmd), "network": step.setup.allow_network}
    return {
        "format": FORMAT_VERSION,
        "image": image_id,
        "imageRef": step.image,
        "cmd": list(step.cmd),
        "setup": setup,
        "env": dict(step.env),
        "outputPath": step.output_path,
        "network": step.allow_network,
        "inputs": inputs,
        # Order kept: overlapping mounts depend on it.
        "mounts": [
            {"host": m.host, "container": m.container, "tree": host_trees[m.host]} for m in step.mounts
        ],
        "sources": [
            {"host": m.host, "container": m.container, "tree": host_trees[m.host]} for m in step.sources
        ],
        "caches": sorted([c.name, c.path] for c in step.all_caches),
        "user": step.user,
        "runtime": step.runtime,
        "readOnlyRootfs": step.read_only_rootfs,
        "capDrop": sorted(step.cap_drop),
    }
