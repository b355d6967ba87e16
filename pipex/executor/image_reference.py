"""The one image-reference rule: how a reference a user writes names a local image (planner and executor alike).

A leaf module (standard library only): the no-op plan imports it.

Docker reads ``python`` as ``docker.io/library/python:latest`` and
``me/tool`` as ``docker.io/me/tool:latest``. Podman keeps images it built or
loaded as ``localhost/<name>`` and finds them by their short name first; an
index built here lets ``me/tool`` find ``localhost/me/tool`` when no image of
the Docker name exists, so ``plan`` (the planner's resolver) and ``build``
(the executor) agree on every engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["normalize_ref", "reference_key", "images_by_ref", "lookup"]

_LOCALHOST = "localhost/"


def normalize_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split a reference into (full repository name, tag, digest) as Docker reads it.

    ``python`` -> ``("docker.io/library/python", "latest", None)``.
    """
    name, _, digest = ref.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if not sep:
        name = f"docker.io/library/{name}"
    elif first == "index.docker.io":
        name = f"docker.io/{rest}" if "/" in rest else f"docker.io/library/{rest}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    elif first == "docker.io" and "/" not in rest:
        name = f"docker.io/library/{rest}"
    if tag is None and not digest:
        tag = "latest"
    return name, tag, digest or None


def reference_key(ref: str) -> str:
    """The canonical form of a reference (an image id stays as it is): equal keys name the same image."""
    if ref.startswith("sha256:"):
        return ref
    name, tag, digest = normalize_ref(ref)
    return f"{name}@{digest}" if digest else f"{name}:{tag}"


def images_by_ref(images: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Index the entries of ``GET /images/json`` by canonical tag and digest reference (and by id)."""
    index: dict[str, str] = {}
    podman_short: dict[str, str] = {}
    for image in images:
        image_id = image.get("Id")
        if not image_id:
            continue
        index[image_id] = image_id
        for ref in (*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ())):
            if ref and not ref.startswith("<none>"):
                index[reference_key(ref)] = image_id
                if ref.startswith(_LOCALHOST):
                    podman_short.setdefault(reference_key(ref[len(_LOCALHOST) :]), image_id)
    for key, image_id in podman_short.items():
        index.setdefault(key, image_id)  # an image of the Docker name wins
    return index


def lookup(index: Mapping[str, str], ref: str) -> str | None:
    """The id of the local image ``ref`` names in an ``images_by_ref`` index (an id prefix too), or None."""
    found = index.get(reference_key(ref))
    if found is None and ref.startswith("sha256:"):
        found = next((i for i in index.values() if i.startswith(ref)), None)
    return found
