"""THE image rule: which image id a step's fingerprint names, found without Docker where that is safe.

The fingerprint holds the resolved image *id*, so re-tagging ``latest``
rebuilds. Ids are found without Docker where that is safe, else in ONE batch:

- the workspace's previous run of the step recorded ``image_ref`` and
  ``image_id``; if ``image_ref`` equals the step's image and the reference is
  pinned by digest (``@sha256:``), its recorded id is reused: a digest cannot
  move;
- with ``offline=True`` (``--offline``) recorded ids are reused for tags too,
  each step trusting its own last run (a step never built here -> RUN
  "image X not resolved: --offline ...");
- every other reference (tags, and images never built in this workspace) is
  resolved by ONE ``image_resolver`` call for all of them; the default
  resolver is one read-only ``GET /images/json`` on the Docker socket
  (``pipex.executor.image_ids``), so a plan never imports docker-py;
- a reference not present locally -> RUN "image X not present locally" (the
  runner pulls it, then decides the step);
- if the daemon does not answer, recorded ids are used with a warning, and
  steps without one -> RUN "image X not resolved: ...".

So a no-op plan contacts Docker at most once, and not at all when every
image is pinned by digest or ``--offline`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pipex.errors import PipexError
from pipex.spec.model import Step

__all__ = ["ImageResolver", "ImageRule", "is_pinned"]

#: ``refs -> {ref: image id, or None when the image is not present locally}``.
ImageResolver = Callable[[list[str]], Mapping[str, "str | None"]]

#: ``step -> the image id its workspace's previous run recorded for its image reference, or None``.
RecordedImage = Callable[[Step], "str | None"]


def is_pinned(ref: str) -> bool:
    """True when an image reference is pinned by digest (``name@sha256:...``) or is an id."""
    return "@sha256:" in ref or ref.startswith("sha256:")


class ImageRule:
    """Image ids for steps by the rule above; at most one resolver call per ``resolve`` batch.

    Recorded ids are per step (each step trusts what its own last run used);
    resolved ids are per reference. ``warnings`` collects what a plan prints.
    """

    def __init__(self, recorded: RecordedImage, *, resolver: ImageResolver | None = None, offline: bool = False) -> None:
        """``recorded`` reads a step's previous run; ``resolver`` defaults to the Docker socket."""
        self._recorded = recorded
        self.resolver = resolver
        self.offline = offline
        self.image_ids: dict[str, str | None] = {}  # ref -> resolved id
        self._image_notes: dict[str, str] = {}
        self._step_images: dict[str, str] = {}
        self._step_notes: dict[str, str] = {}
        self.warnings: list[str] = []

    def image_of(self, step: Step) -> str | None:
        """The image id found for ``step`` (``None``: unknown, see ``note``)."""
        return self._step_images.get(step.id) or self.image_ids.get(step.image)

    def note(self, step: Step) -> str:
        """Why ``step`` has no image id."""
        return self._step_notes.get(step.id) or self._image_notes.get(step.image) or f"image {step.image} not resolved"

    def resolve(self, steps: Iterable[Step]) -> None:
        """Find image ids for ``steps`` not decided yet: recorded where safe, the rest in ONE resolver call."""
        wanted: dict[str, list[Step]] = {}
        for step in steps:
            ref = step.image
            if step.id in self._step_images or ref in self.image_ids or ref in self._image_notes:
                continue
            if self.offline or is_pinned(ref):
                # Only here is the previous run read: a tag online is re-resolved anyway.
                recorded = self._recorded(step)
                if recorded:
                    self._step_images[step.id] = recorded
                    continue
                if self.offline:
                    self._step_notes[step.id] = f"image {ref} not resolved: --offline and no run recorded its id"
                    continue
            wanted.setdefault(ref, []).append(step)
        if not wanted:
            return
        resolver = self.resolver
        if resolver is None:
            from pipex.executor.image_ids import default_image_resolver

            resolver = default_image_resolver
        try:
            found = dict(resolver(list(wanted)))
        except PipexError as error:
            warning = f"{error}; using image ids recorded by previous runs"
            if warning not in self.warnings:  # resolution may be asked again for pending steps
                self.warnings.append(warning)
            for ref, waiting in wanted.items():
                for step in waiting:
                    recorded = self._recorded(step)
                    if recorded:
                        self._step_images[step.id] = recorded
                    else:
                        self._step_notes[step.id] = f"image {ref} not resolved: Docker unreachable"
            return
        for ref in wanted:
            image_id = found.get(ref)
            if image_id:
                self.image_ids[ref] = image_id
            else:
                self._image_notes[ref] = f"image {ref} not present locally"
