"""Images on the engine: references resolved to local ids in one call, and pulls that a cancel stops."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from pipex.errors import ImageError, InterruptedBuild
from pipex.executor.docker.engine import POLL_SEC, map_error, mapped_errors, reason
from pipex.executor.image_reference import images_by_ref, lookup

__all__ = ["EngineImages", "split_ref"]


class EngineImages:
    """The images side of one executor: ``api`` returns the connected client.

    Ids found by ``ensure_image`` are remembered: a step then runs the very
    image whose id entered its fingerprint, and saves an inspect per step.
    """

    def __init__(self, api: Callable[[], Any]) -> None:
        """Nothing is contacted until asked."""
        self._api = api
        self._ensured: dict[str, str] = {}

    @property
    def api(self) -> Any:
        """The connected client."""
        return self._api()

    def resolve_images(self, refs: Iterable[str]) -> dict[str, str | None]:
        """Map each ref to its local image id (None when absent), in one ``images`` call."""
        with mapped_errors("listing images"):
            index = images_by_ref(self.api.images())
        return {ref: lookup(index, ref) for ref in refs}

    def ensure_image(
        self, ref: str, progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
    ) -> str:
        """Return the local image id of ref, pulling it (reporting progress) when absent.

        A pull stops at once when ``cancel`` is set (InterruptedBuild): it runs
        on its own thread, and a pull's stream may say nothing for minutes.
        """
        from docker.errors import DockerException, ImageNotFound

        api = self.api
        try:
            image_id = str(api.inspect_image(ref)["Id"])
            self._ensured[ref] = image_id
            return image_id
        except ImageNotFound:
            pass
        except DockerException as error:
            raise map_error(error, f"inspecting image '{ref}'") from None
        if cancel is None:
            return self.pull(ref, progress)
        outcome: dict[str, Any] = {}

        def pull_in_thread() -> None:
            try:
                outcome["id"] = self.pull(ref, progress)
            except BaseException as error:  # handed to the waiting thread
                outcome["error"] = error

        worker = threading.Thread(target=pull_in_thread, name=f"pipex-pull-{ref}", daemon=True)
        worker.start()
        while worker.is_alive():
            if cancel.wait(POLL_SEC):
                # The engine goes on with (or drops) the pull; we do not wait for it.
                raise InterruptedBuild(f"pulling image '{ref}' interrupted")
            worker.join(POLL_SEC)
        if "error" in outcome:
            raise outcome["error"]
        return str(outcome["id"])

    def pull(self, ref: str, progress: Callable[[str], None] | None) -> str:
        from docker.errors import DockerException

        api = self.api
        repo, tag = split_ref(ref)
        try:
            for event in api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise pull_error(ref, str(event["error"]))
                if progress is not None:
                    line = " ".join(str(event[k]) for k in ("id", "status", "progress") if event.get(k))
                    if line:
                        progress(line)
            image_id = str(api.inspect_image(ref)["Id"])
            self._ensured[ref] = image_id
            return image_id
        except ImageError:
            raise
        except (DockerException, OSError) as error:
            raise pull_error(ref, reason(error)) from None

    def image_id(self, ref: str) -> str:
        """Return the id of a local image; an id is taken as is (saves a call)."""
        if ref.startswith("sha256:") and len(ref) == 71:
            return ref
        if ref in self._ensured:
            return self._ensured[ref]
        from docker.errors import DockerException, ImageNotFound

        try:
            return str(self.api.inspect_image(ref)["Id"])
        except ImageNotFound:
            msg = f"image '{ref}' not found locally (pull it first)"
            raise ImageError(msg) from None
        except DockerException as error:
            raise map_error(error, f"inspecting image '{ref}'") from None


def split_ref(ref: str) -> tuple[str, str | None]:
    """Split a reference into repository and tag (or digest) for a pull."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.split(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


def pull_error(ref: str, reason: str) -> ImageError:
    return ImageError(f"image '{ref}' not found locally and cannot be pulled: {reason}")
