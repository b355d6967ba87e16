"""Semantic checks and normal forms: raw step mappings (kits already applied) -> model Steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from pipex.errors import SpecError
from pipex.spec.condition import parse_condition
from pipex.spec.document import Document, PathPart, display_path
from pipex.spec.envfile import parse_env_file
from pipex.spec.model import CacheSpec, InputRef, PathMapping, Resources, SecretSpec, SetupSpec, Step
from pipex.spec.paths import CACHE_NAME_PATTERN, check_container_path, check_host_path, slugify
from pipex.spec.validate import suggest

__all__ = ["StepContext", "build_step", "env_value", "check_graph", "step_id_of"]


@dataclass
class StepContext:
    """What building one step needs: where it is, the project, the lower env layers."""

    doc: Document
    index: int
    root: Path
    cli_env: Mapping[str, str]
    kit_env: Mapping[str, str] = field(default_factory=dict)
    kit: str | None = None
    errors: list[SpecError] = field(default_factory=list)
    env_files: list[Path] = field(default_factory=list)
    # Where a field came from when a kit generated it: point at `uses` instead.
    generated: frozenset[str] = frozenset()
    # Shared by all steps of one load: many steps mount the same directories.
    host_checks: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def fail(self, message: str, *parts: PathPart, key: bool = False) -> None:
        """Record an error at ``steps[index].<parts>`` (at ``uses`` for kit-made fields)."""
        if parts and isinstance(parts[0], str) and parts[0] in self.generated:
            message = f"from kit '{self.kit}': {message}"
            parts = ("uses",)
        self.errors.append(self.doc.error(message, ["steps", self.index, *parts], key=key))


def env_value(value: Any) -> str:
    """Env values may be written as numbers or booleans in YAML; the step sees text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def step_id_of(raw: Mapping[str, Any]) -> str:
    """The step's id, or its slugified name when it has none."""
    if raw.get("id"):
        return str(raw["id"])
    return slugify(str(raw.get("name") or ""))


def _command(value: Any) -> tuple[str, ...]:
    # A string runs with `sh -e -c`: the first failing line fails the step (GitHub
    # Actions' default shell and Snakemake's strict mode do the same). A list is
    # an argv; `cmd: [sh, -c, "..."]` opts out of -e.
    return ("sh", "-e", "-c", value) if isinstance(value, str) else tuple(str(word) for word in value)


def _host(ctx: StepContext, value: str, *parts: PathPart) -> str:
    checked = ctx.host_checks.get(value)
    if checked is None:
        checked = ctx.host_checks[value] = check_host_path(value, ctx.root)
    normal, error = checked
    if error:
        ctx.fail(error, *parts)
    return normal


def _container(ctx: StepContext, value: str, *parts: PathPart) -> str:
    normal, error = check_container_path(value)
    if error:
        ctx.fail(error, *parts)
    return normal


def _caches(ctx: StepContext, items: Sequence[Mapping[str, Any]], *where: PathPart) -> tuple[CacheSpec, ...]:
    out: list[CacheSpec] = []
    names: set[str] = set()
    for j, item in enumerate(items):
        name = item["name"]
        if name in (".", "..") or not CACHE_NAME_PATTERN.match(name):
            ctx.fail(f"invalid cache name '{name}'", *where, j, "name")
        elif name in names:
            ctx.fail(f"cache '{name}' is listed twice", *where, j, "name")
        names.add(name)
        path = _container(ctx, item["path"], *where, j, "path")
        out.append(CacheSpec(name=name, path=path, exclusive=bool(item.get("exclusive", False))))
    return tuple(out)


def _mappings(ctx: StepContext, items: Sequence[Mapping[str, Any]], where: str) -> tuple[PathMapping, ...]:
    out = []
    for j, item in enumerate(items):
        host = _host(ctx, item["host"], where, j, "host")
        container = _container(ctx, item["container"], where, j, "container")
        out.append(PathMapping(host=host, container=container))
    return tuple(out)


def _env(ctx: StepContext, raw: Mapping[str, Any]) -> Mapping[str, str]:
    """Resolve env layers: kit defaults < --env-file < step envFile < step env."""
    env: dict[str, str] = {**ctx.kit_env, **ctx.cli_env}
    files = raw.get("envFile")
    if files is not None:
        listed = [files] if isinstance(files, str) else list(files)
        for j, name in enumerate(listed):
            where: tuple[PathPart, ...] = ("envFile",) if isinstance(files, str) else ("envFile", j)
            normal, error = check_host_path(name, ctx.root)
            if error:
                ctx.fail(error, *where)
                continue
            path = ctx.root / normal
            ctx.env_files.append(path)
            try:
                env.update(parse_env_file(path, shown=display_path(path)))
            except SpecError as problem:
                ctx.errors.append(problem)
    for key, value in (raw.get("env") or {}).items():
        env[str(key)] = env_value(value)
    return MappingProxyType(env)


def _inputs(ctx: StepContext, items: Sequence[Any]) -> tuple[InputRef, ...]:
    out = []
    seen: set[str] = set()
    for j, item in enumerate(items):
        ref = InputRef(step=item) if isinstance(item, str) else InputRef(
            step=item["step"],
            copy_to_output=bool(item.get("copyToOutput", False)),
            optional=bool(item.get("optional", False)),
        )
        if ref.step in seen:
            ctx.fail(f"input '{ref.step}' is listed twice", "inputs", j)
        seen.add(ref.step)
        out.append(ref)
    return tuple(out)


def _secrets(ctx: StepContext, items: Sequence[Mapping[str, Any]]) -> tuple[SecretSpec, ...]:
    out = []
    names: set[str] = set()
    for j, item in enumerate(items):
        name = item["name"]
        if name in (".", ".."):
            ctx.fail(f"invalid secret name '{name}'", "secrets", j, "name")
        elif name in names:
            ctx.fail(f"secret '{name}' is listed twice", "secrets", j, "name")
        names.add(name)
        file = item.get("file")
        if file is not None and not file.startswith(("/", "~")):
            # Relative secret files live in the project; they need not exist yet.
            file, error = check_host_path(file, ctx.root, must_exist=False)
            if error:
                ctx.fail(error, "secrets", j, "file")
        out.append(SecretSpec(name=name, file=file, env=item.get("env")))
    return tuple(out)


def _check_container_clashes(ctx: StepContext, step: Step) -> None:
    """Two things mounted at one container path would silently hide one another."""
    used: dict[str, str] = {step.output_path: "outputPath"}
    places: list[tuple[str, tuple[PathPart, ...]]] = []
    places += [(m.container, ("mounts", j, "container")) for j, m in enumerate(step.mounts)]
    places += [(s.container, ("sources", j, "container")) for j, s in enumerate(step.sources)]
    places += [(c.path, ("caches", j, "path")) for j, c in enumerate(step.caches)]
    for path, where in places:
        if path in used:
            ctx.fail(f"container path '{path}' is already used by {used[path]}", *where)
        else:
            used[path] = f"{where[0]}[{where[1]}]"


def build_step(raw: Mapping[str, Any], ctx: StepContext) -> Step:
    """Build a Step from a schema-valid raw mapping, recording problems in ``ctx.errors``."""
    step_id = step_id_of(raw)
    if not step_id:
        ctx.fail(f"cannot derive an id from name {raw.get('name')!r}; add an 'id'", "name")
        step_id = f"step-{ctx.index}"
    setup = None
    if raw.get("setup"):
        s = raw["setup"]
        setup = SetupSpec(
            cmd=_command(s["cmd"]),
            caches=_caches(ctx, s.get("caches") or (), "setup", "caches"),
            allow_network=bool(s.get("allowNetwork", False)),
        )
    condition = raw.get("if")
    if isinstance(condition, bool):
        condition = "true" if condition else "false"
    if condition is not None:
        try:
            parse_condition(condition)
        except SpecError as error:
            ctx.fail(error.message, "if")
    resources = None
    if raw.get("resources") is not None:
        r = raw["resources"]
        resources = Resources(cpus=r.get("cpus"), memory=r.get("memory"), pids=r.get("pids"))
    timeout = raw.get("timeoutSec")
    step = Step(
        id=step_id,
        image=raw["image"],
        cmd=_command(raw["cmd"]),
        name=raw.get("name"),
        setup=setup,
        inputs=_inputs(ctx, raw.get("inputs") or ()),
        env=_env(ctx, raw),
        output_path=_container(ctx, raw.get("outputPath", "/output"), "outputPath"),
        mounts=_mappings(ctx, raw.get("mounts") or (), "mounts"),
        sources=_mappings(ctx, raw.get("sources") or (), "sources"),
        caches=_caches(ctx, raw.get("caches") or (), "caches"),
        condition=condition,
        timeout_sec=float(timeout) if timeout is not None else None,
        retries=int(raw.get("retries", 0)),
        retry_delay_ms=int(raw.get("retryDelayMs", 5000)),
        allow_failure=bool(raw.get("allowFailure", False)),
        allow_network=bool(raw.get("allowNetwork", False)),
        user=raw.get("user"),
        read_only_rootfs=bool(raw.get("readOnlyRootfs", False)),
        cap_drop=tuple(raw.get("capDrop") or ()),
        runtime=raw.get("runtime"),
        resources=resources,
        secrets=_secrets(ctx, raw.get("secrets") or ()),
        kit=ctx.kit,
    )
    _check_container_clashes(ctx, step)
    return step


def check_graph(
    steps: Sequence[Step],
    doc: Document,
    raw_steps: Sequence[Any],
    positions: Sequence[int] | None = None,
    unbuilt: Sequence[str] = (),
) -> list[SpecError]:
    """Unique ids, inputs that name existing steps, and no cycles.

    ``positions[k]`` is the index in the file of ``steps[k]`` (steps whose kit
    failed are missing); ``unbuilt`` are their ids, still valid input names.
    """
    if positions is None:
        positions = range(len(steps))
    errors: list[SpecError] = []
    first: dict[str, int] = {}
    where: list[PathPart]
    for k, step in enumerate(steps):
        i = positions[k]
        if step.id in first:
            where = ["steps", i, "id"] if raw_steps[i].get("id") else ["steps", i, "name"]
            errors.append(doc.error(f"duplicate step id '{step.id}' (also steps[{positions[first[step.id]]}])", where))
        else:
            first[step.id] = k
    ids = [*first, *unbuilt]
    for k, step in enumerate(steps):
        for j, ref in enumerate(step.inputs):
            if ref.step not in first and ref.step not in unbuilt:
                where = _input_path(raw_steps[positions[k]], positions[k], j)
                errors.append(doc.error(f"unknown step '{ref.step}'{suggest(ref.step, ids)}", where))
    errors.extend(_cycles(steps, first, doc, raw_steps, positions))
    return errors


def _input_path(raw: Mapping[str, Any], i: int, j: int) -> list[PathPart]:
    items = raw.get("inputs") or []
    if j < len(items) and isinstance(items[j], Mapping):
        return ["steps", i, "inputs", j, "step"]
    return ["steps", i, "inputs", j]


def _cycles(
    steps: Sequence[Step], index: Mapping[str, int], doc: Document, raw_steps: Sequence[Any], positions: Sequence[int]
) -> list[SpecError]:
    """Find dependency cycles with an iterative DFS; report each cycle once."""
    errors: list[SpecError] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()
    for start in index:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, k = stack[-1]
            inputs = steps[index[node]].inputs
            if k >= len(inputs):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, k + 1)
            nxt = inputs[k].step
            if nxt not in index:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    # Written in data-flow order: a -> b means b takes a as input.
                    flow = list(reversed(cycle))
                    first_at = min(range(len(flow)), key=lambda n: index[flow[n]])
                    flow = flow[first_at:] + flow[:first_at]
                    text = " -> ".join([*flow, flow[0]])
                    at = positions[index[node]]
                    where = _input_path(raw_steps[at], at, k)
                    errors.append(doc.error(f"dependency cycle: {text}", where))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
                path.append(nxt)
    return errors
