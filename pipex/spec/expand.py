"""Apply kits to raw steps and build model Steps, collecting every error on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipex.errors import SpecError
from pipex.spec.document import Document
from pipex.spec.model import Step
from pipex.spec.normalize import StepContext, build_step, env_value, step_id_of

__all__ = ["Expanded", "expand_steps"]


@dataclass
class Expanded:
    """Built steps, the problems found, and the files they were read from."""

    steps: list[Step] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    dependencies: list[Path] = field(default_factory=list)
    cacheable: bool = True
    positions: list[int] = field(default_factory=list)
    unbuilt: list[str] = field(default_factory=list)


def _step_schema() -> dict[str, Any]:
    from pipex.spec.schemas import PIPELINE_SCHEMA, load_schema

    schema = load_schema(PIPELINE_SCHEMA)
    return {"$ref": "#/$defs/step", "$defs": schema["$defs"]}


_STEP_SCHEMA: dict[str, Any] | None = None


def _apply_kit(raw: Mapping[str, Any], i: int, doc: Document, root: Path, config: Any, out: Expanded) -> tuple[
    dict[str, Any], dict[str, str], frozenset[str]
] | None:
    """Expand ``uses``: resolve the kit, check ``with``, call it, merge the user's fields."""
    global _STEP_SCHEMA
    from pipex.spec.kit import KitContext, KitError
    from pipex.spec.kit_merge import merge_step
    from pipex.spec.kit_registry import resolve_kit
    from pipex.spec.validate import schema_errors

    name = raw["uses"]
    try:
        resolved = resolve_kit(name, config)
    except KitError as error:
        out.errors.append(doc.error(error.message, ["steps", i, "uses"]))
        return None
    out.dependencies.extend(resolved.files)
    out.cacheable = out.cacheable and resolved.cacheable
    params = {**resolved.defaults, **(raw.get("with") or {})}
    problems = schema_errors(params, resolved.kit.with_schema, doc, prefix=["steps", i, "with"])
    if problems:
        out.errors.extend(problems)
        return None
    ctx = KitContext(step_id=step_id_of(raw) or f"step-{i}", root=root, kit=name, image=resolved.image)
    try:
        generated = resolved.kit.expand(params, ctx)
    except KitError as error:
        where: list[str | int] = ["steps", i, "with", error.param] if error.param else ["steps", i, "uses"]
        out.errors.append(doc.error(error.message, where))
        return None
    except Exception as error:  # a kit is user code: one line, no traceback
        msg = f"kit '{name}' failed: {type(error).__name__}: {error}"
        out.errors.append(doc.error(msg, ["steps", i, "uses"]))
        return None
    if not isinstance(generated, Mapping):
        msg = f"kit '{name}' returned {type(generated).__name__}, not a step mapping"
        out.errors.append(doc.error(msg, ["steps", i, "uses"]))
        return None
    out.dependencies.extend(ctx.probed)
    step, kit_env = merge_step(raw, generated)
    if _STEP_SCHEMA is None:
        _STEP_SCHEMA = _step_schema()
    blind = Document(data=step, file=doc.file, text="", node=None, _node_ready=True)
    invalid = schema_errors(step, _STEP_SCHEMA, blind)
    if invalid:
        for problem in invalid:
            msg = f"kit '{name}' produced an invalid step: {problem.path or 'step'}: {problem.message}"
            out.errors.append(doc.error(msg, ["steps", i, "uses"]))
        return None
    user_fields = set(raw) - {"uses", "with"}
    generated_fields = frozenset(set(generated) - user_fields)
    return step, {str(k): env_value(v) for k, v in kit_env.items()}, generated_fields


def expand_steps(
    raw_steps: Sequence[Mapping[str, Any]], doc: Document, root: Path, cli_env: Mapping[str, str], config: Any
) -> Expanded:
    """Turn schema-valid raw steps into Steps; kit and semantic errors are all collected."""
    out = Expanded()
    host_checks: dict[str, tuple[str, str | None]] = {}
    for i, raw in enumerate(raw_steps):
        kit_env: dict[str, str] = {}
        generated: frozenset[str] = frozenset()
        step_raw: Mapping[str, Any] = raw
        if "uses" in raw:
            applied = _apply_kit(raw, i, doc, root, config, out)
            if applied is None:
                out.unbuilt.append(step_id_of(raw))
                continue
            step_raw, kit_env, generated = applied
        ctx = StepContext(
            doc=doc, index=i, root=root, cli_env=cli_env, kit_env=kit_env,
            kit=raw.get("uses"), generated=generated, host_checks=host_checks,
        )
        step = build_step(step_raw, ctx)
        out.errors.extend(ctx.errors)
        out.dependencies.extend(ctx.env_files)
        out.steps.append(step)
        out.positions.append(i)
    return out
