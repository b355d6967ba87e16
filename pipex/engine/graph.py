"""The step DAG: target selection (ids and globs), stable topological order, mermaid/dot/text rendering."""

from __future__ import annotations

import heapq
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Iterable, Mapping

from pipex.errors import UsageError

if TYPE_CHECKING:
    from pipex.spec.model import Pipeline

__all__ = [
    "leaves",
    "resolve_names",
    "select",
    "topo_order",
    "render",
    "FORMATS",
]

_GLOB_CHARS = frozenset("*?[")

#: Formats ``render`` understands.
FORMATS = ("text", "mermaid", "dot")


def leaves(pipeline: Pipeline) -> tuple[str, ...]:
    """Return the ids of steps no other step takes as input, in file order."""
    used = {ref.step for step in pipeline.steps for ref in step.inputs}
    return tuple(step.id for step in pipeline.steps if step.id not in used)


def resolve_names(pipeline: Pipeline, names: Iterable[str], *, what: str = "target") -> tuple[str, ...]:
    """Expand step ids and fnmatch globs to step ids (file order, each once).

    Raises UsageError naming the closest ids when a name matches no step.
    """
    ids = pipeline.step_ids
    known = set(ids)
    chosen: set[str] = set()
    for name in names:
        if name in known:
            chosen.add(name)
            continue
        matches = [i for i in ids if fnmatchcase(i, name)] if _GLOB_CHARS & set(name) else []
        if not matches:
            import difflib  # only on the error path: it costs an import

            close = difflib.get_close_matches(name, ids, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            msg = f"unknown {what} '{name}' in pipeline '{pipeline.id}'{hint}"
            raise UsageError(msg)
        chosen.update(matches)
    return tuple(i for i in ids if i in chosen)


def select(pipeline: Pipeline, targets: Iterable[str] = ()) -> tuple[tuple[str, ...], frozenset[str]]:
    """Return (resolved targets, the targets plus every step they transitively need).

    No targets means every leaf.
    """
    names = tuple(targets)
    resolved = resolve_names(pipeline, names) if names else leaves(pipeline)
    by_id = {step.id: step for step in pipeline.steps}
    selected: set[str] = set()
    stack = list(resolved)
    while stack:
        step_id = stack.pop()
        if step_id in selected:
            continue
        selected.add(step_id)
        stack.extend(ref.step for ref in by_id[step_id].inputs)
    return resolved, frozenset(selected)


def topo_order(pipeline: Pipeline, selected: Iterable[str] | None = None) -> list[str]:
    """Return the selected steps in topological order; among ready steps, file order wins.

    The spec loader has already rejected cycles; one here is a bug, raised as ValueError.
    """
    keep = set(pipeline.step_ids if selected is None else selected)
    position = {step.id: index for index, step in enumerate(pipeline.steps)}
    waiting: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    for step in pipeline.steps:
        if step.id not in keep:
            continue
        needs = {ref.step for ref in step.inputs}
        waiting[step.id] = len(needs)
        for need in needs:
            dependants.setdefault(need, []).append(step.id)
    ready = [position[i] for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ids = pipeline.step_ids
    order: list[str] = []
    while ready:
        step_id = ids[heapq.heappop(ready)]
        order.append(step_id)
        for dependant in dependants.get(step_id, ()):
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                heapq.heappush(ready, position[dependant])
    if len(order) != len(waiting):
        msg = f"cycle among steps: {sorted(set(waiting) - set(order))}"
        raise ValueError(msg)
    return order


# -- rendering ----------------------------------------------------------------

_DOT_FILL = {"cached": "#c8e6c9", "run": "#ffcdd2", "pending": "#fff9c4", "skipped": "#e0e0e0"}
_MERMAID_CLASS = {
    "cached": "fill:#c8e6c9,stroke:#2e7d32",
    "run": "fill:#ffcdd2,stroke:#c62828",
    "pending": "fill:#fff9c4,stroke:#f9a825",
    "skipped": "fill:#e0e0e0,stroke:#757575,stroke-dasharray:4 2",
}


def render(
    pipeline: Pipeline,
    order: Iterable[str],
    statuses: Mapping[str, str] | None = None,
    *,
    fmt: str = "text",
) -> str:
    """Render the DAG of the steps in ``order`` as text, mermaid or dot.

    ``statuses`` maps step id to ``cached``/``run``/``pending``/``skipped``;
    steps are styled by status (mermaid classDef, dot fill colour).
    """
    steps = [pipeline.step(i) for i in order]
    shown = {step.id for step in steps}
    status = dict(statuses or {})
    edges = [(ref.step, step.id, ref.optional) for step in steps for ref in step.inputs if ref.step in shown]
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        for step in steps:
            label = _mermaid_label(step.id if not step.name else f"{step.id}: {step.name}")
            cls = f":::{status[step.id]}" if step.id in status else ""
            lines.append(f"  {_mermaid_id(step.id)}[\"{label}\"]{cls}")
        for source, target, optional in edges:
            arrow = "-.->" if optional else "-->"
            lines.append(f"  {_mermaid_id(source)} {arrow} {_mermaid_id(target)}")
        for name in sorted(set(status.values())):
            if name in _MERMAID_CLASS:
                lines.append(f"  classDef {name} {_MERMAID_CLASS[name]}")
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = [f"digraph {_dot_quote(pipeline.id)} {{", "  rankdir=LR;", "  node [shape=box, style=\"rounded,filled\", fillcolor=white];"]
        for step in steps:
            attrs = [f"label={_dot_quote(step.id if not step.name else f'{step.id}: {step.name}')}"]
            if step.id in status:
                attrs.append(f"fillcolor={_dot_quote(_DOT_FILL.get(status[step.id], 'white'))}")
                attrs.append(f"tooltip={_dot_quote(status[step.id])}")
            lines.append(f"  {_dot_quote(step.id)} [{', '.join(attrs)}];")
        for source, target, optional in edges:
            style = " [style=dashed]" if optional else ""
            lines.append(f"  {_dot_quote(source)} -> {_dot_quote(target)}{style};")
        lines.append("}")
        return "\n".join(lines) + "\n"
    if fmt == "text":
        lines = []
        for step in steps:
            needs = [ref.step + ("?" if ref.optional else "") for ref in step.inputs if ref.step in shown]
            tag = f"[{status[step.id]}] " if step.id in status else ""
            arrow = f" <- {', '.join(needs)}" if needs else ""
            lines.append(f"{tag}{step.id}{arrow}")
        return "\n".join(lines) + "\n"
    msg = f"unknown graph format '{fmt}' (expected one of: {', '.join(FORMATS)})"
    raise UsageError(msg)


def _mermaid_id(step_id: str) -> str:
    # Step ids are [A-Za-z0-9_-]; a prefix keeps mermaid keywords (end, graph) from clashing.
    return f"s_{step_id}"


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
