"""A step file for ``pipex exec``: one step (a mapping with ``id``, ``image``, ``cmd``...) or a pipeline.

Validated against the pipeline schema's ``step`` definition (errors point
into the file as it is, not at ``steps[0]``), expanded by its kit, with host
paths relative to the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipex.errors import UsageError

if TYPE_CHECKING:
    from pipex.spec.config import Config
    from pipex.spec.model import Step

__all__ = ["config_for", "load_step"]


def config_for(file: Path, workspace_root: Path | None) -> Config:
    """The ``.pipex.yml`` a step file uses: beside it, else the workspace's project's, else none."""
    from pipex.spec.config import Config, find_config_file, load_config

    for root in (file.parent, workspace_root):
        if root is not None and find_config_file(root) is not None:
            return load_config(root)
    return Config(root=file.parent.resolve())


def load_step(file: Path, step_id: str | None, *, config: Config, env_files: Sequence[Path] = ()) -> tuple[Step, Path]:
    """The Step of ``file`` (a single step or a pipeline; ``step_id`` picks one) and the root its paths use."""
    from pipex.errors import SpecErrors
    from pipex.spec.document import display_path, parse_document
    from pipex.spec.expand import expand_steps
    from pipex.spec.envfile import merge_env_files
    from pipex.spec.schemas import PIPELINE_SCHEMA, load_schema
    from pipex.spec.validate import schema_errors

    file = Path(file)
    if not file.is_file():
        msg = f"no step file {file}"
        raise UsageError(msg)
    root = file.parent.resolve()
    doc = parse_document(file, shown=display_path(file))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error("expected a step (a mapping with id, image, cmd) or a pipeline with 'steps'")
    schema = load_schema(PIPELINE_SCHEMA)
    if "steps" in data:
        errors = schema_errors(data, schema, doc)
        raw_steps = list(data["steps"])
    else:
        doc = _single_step(doc)
        errors = schema_errors(data, {"$ref": "#/$defs/step", "$defs": schema["$defs"]}, doc)
        raw_steps = [data]
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    expanded = expand_steps(raw_steps, doc, root, merge_env_files(env_files), config)
    if expanded.errors:
        raise expanded.errors[0] if len(expanded.errors) == 1 else SpecErrors(expanded.errors)
    steps = {s.id: s for s in expanded.steps}
    if step_id is None:
        if len(steps) != 1:
            msg = f"{display_path(file)} has {len(steps)} steps ({', '.join(steps)}); pick one with --step"
            raise UsageError(msg)
        return next(iter(steps.values())), root
    if step_id not in steps:
        msg = f"{display_path(file)} has no step '{step_id}'; its steps: {', '.join(steps)}"
        raise UsageError(msg)
    return steps[step_id], root


def _single_step(doc: Any) -> Any:
    """``doc`` whose errors at ``steps[0].x`` point at ``x``: the file is that one step."""
    from pipex.spec.document import Document

    class SingleStep(Document):
        def locate(self, parts: Sequence[Any], *, key: bool = False) -> tuple[int | None, int | None]:
            return super().locate(_strip(parts), key=key)

        def error(self, message: str, parts: Sequence[Any] = (), *, key: bool = False) -> Any:
            return super().error(message, _strip(parts), key=key)

    return SingleStep(**{f.name: getattr(doc, f.name) for f in dataclasses.fields(doc)})


def _strip(parts: Sequence[Any]) -> list[Any]:
    return list(parts[2:]) if len(parts) >= 2 and parts[0] == "steps" and parts[1] == 0 else list(parts)
