"""What the store recorded, as the planner reads it: sound runs' metas (each read once), previous runs, their images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipex.errors import PipexError
from pipex.spec.model import Step
from pipex.store.runs import RunMeta

if TYPE_CHECKING:
    from pipex.store.store import Store

__all__ = ["RecordedRuns"]


class RecordedRuns:
    """The store as the planner reads it: a run's meta (read once), a step's previous run, its recorded image."""

    def __init__(self, store: Store, workspace: str) -> None:
        """Nothing is read until asked."""
        self.store = store
        self.workspace = workspace
        self._metas: dict[str, RunMeta | None] = {}

    def meta(self, run_id: str | None) -> RunMeta | None:
        """The meta of a sound run (what ``store.has_run`` checks), read once per run id; else None."""
        if not run_id:
            return None
        if run_id not in self._metas:
            record = self.store.sound_run(run_id)
            self._metas[run_id] = record.meta if record is not None else None
        return self._metas[run_id]

    def previous_run(self, step_id: str) -> str | None:
        """The run the workspace's ref for ``step_id`` names (None: none, or unreadable)."""
        try:
            return self.store.get_ref(self.workspace, step_id)
        except (PipexError, OSError):
            return None

    def recorded_image(self, step: Step) -> str | None:
        """The image id the step's previous run used, if it ran the same image reference."""
        meta = self.meta(self.previous_run(step.id))
        if meta and meta.image_ref == step.image and meta.image_id:
            return meta.image_id
        return None
