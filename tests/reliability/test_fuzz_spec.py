"""Hostile specs: hypothesis fuzz of the loader; every case loads or fails as one line per problem.

Three generators: mutations of a valid pipeline that uses every field (a
value replaced by something hostile, a key dropped or added, a step
duplicated), random documents over the format's vocabulary, and raw text
mutations of the valid file (bytes inserted, lines cut). Cases run in
process through ``load_pipeline`` (``PIPEX_RELIABILITY_FUZZ_CASES``, default
1,000 per generator) and a sample through ``pipex validate`` as subprocesses
(``PIPEX_RELIABILITY_FUZZ_CLI_CASES``): exit 0 or 2, never a traceback.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipex.errors import PipexError, SpecErrors

from .conftest import REPO, iterations

FULL = REPO / "tests" / "pipelines" / "full"
CASES = iterations("fuzz_cases", 1000)
CLI_CASES = iterations("fuzz_cli_cases", 40)
SETTINGS = settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)

STEP_KEYS = [
    "id", "name", "image", "cmd", "uses", "with", "setup", "inputs", "env", "envFile", "outputPath", "mounts",
    "sources", "caches", "if", "timeoutSec", "retries", "retryDelayMs", "allowFailure", "allowNetwork", "user",
    "readOnlyRootfs", "capDrop", "runtime", "resources", "secrets", "step", "host", "container", "path",
    "exclusive", "copyToOutput", "optional", "file", "run", "src", "script", "requirements", "cpus", "memory", "pids",
]  # fmt: skip
HOSTILE_TEXT = [
    "", " ", "..", "../..", "../../etc", "/etc", "/", "a/b", "a\nb", "a\x00b", "\udcff", "é", "💥", "${HOME}", "$(id)",
    "`id`", "-rf", "--force", "*", "?", "[", "{", "&a", "*a", "!!python/object:os.system", "~", "null", "true",
    "0x10", "1e999", "a" * 5000, "step-" * 50, "env.X ==", "env.X && ", "__import__('os')", "/output/../etc",
    "/input/x", "\\", "C:\\x", "%s%n", "\t", "\r\n",
]  # fmt: skip

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=30),
    st.sampled_from(STEP_KEYS),
)
values = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(STEP_KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=20,
)


def _base() -> dict[str, Any]:
    """The valid pipeline every mutation starts from: tests/pipelines/full plus kit steps."""
    doc = yaml.safe_load((FULL / "pipeline.yaml").read_text())
    doc["steps"].append({"id": "py", "uses": "python", "with": {"run": "print(1)", "src": "src"}, "inputs": ["build"]})
    doc["steps"].append({"id": "sh", "uses": "shell", "with": {"run": "echo hi"}, "env": {"A": "1"}})
    return doc


BASE = _base()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (tuple of keys/indexes) inside ``node``, the root included."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """BASE with 1-4 mutations: replace, delete, add a key, duplicate or reorder steps."""
    doc: Any = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "dup-step", "swap-id"]))
        if not path:
            if op == "replace":
                doc = draw(values)
            continue
        parent = _parent(doc, path)
        key = path[-1]
        if op == "replace":
            parent[key] = draw(values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(STEP_KEYS))] = draw(values)
        elif op == "add" and isinstance(parent[key], list):
            parent[key].append(draw(values))
        elif isinstance(doc, dict) and isinstance(doc.get("steps"), list) and doc["steps"]:
            steps = doc["steps"]
            index = draw(st.integers(0, len(steps) - 1))
            if op == "dup-step":
                steps.append(copy.deepcopy(steps[index]))
            elif isinstance(steps[index], dict):
                other = draw(st.integers(0, len(steps) - 1))
                target = steps[other].get("id") if isinstance(steps[other], dict) else None
                steps[index]["inputs"] = [target or "missing", steps[index].get("id", "self")]
    return doc


random_docs = st.one_of(
    values,
    st.fixed_dictionaries({"steps": st.lists(st.dictionaries(st.sampled_from(STEP_KEYS), values, max_size=8), max_size=4)}),
    st.fixed_dictionaries(
        {"id": values, "steps": st.lists(st.fixed_dictionaries({"id": values, "image": values, "cmd": values}), max_size=3)}
    ),
)


def _dump(doc: Any, how: str) -> bytes:
    """``doc`` as YAML or JSON bytes (non-serialisable values become YAML tags or strings)."""
    if how == "json":
        return json.dumps(doc, default=str, allow_nan=True).encode("utf-8", "surrogatepass")
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass")


@st.composite
def texts(draw: st.DrawFn) -> bytes:
    """The valid file's bytes with insertions, deletions, truncation or line shuffles."""
    data = bytearray(_dump(BASE, "yaml"))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["insert", "delete", "truncate", "dup-line", "indent"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(
                st.one_of(
                    st.binary(max_size=8),
                    st.sampled_from([b":", b"- ", b"{", b"[", b"&a ", b"*a", b"<<: *a\n", b"!!binary ", b"\t", b"\n  ", b'"', b"\xff", b"%YAML 9\n"]),
                )
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del data[pos:]
        else:
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, max(0, len(lines) - 1)))
            lines.insert(index, (b"  " + lines[index]) if op == "indent" else lines[index])
            if op == "indent":
                del lines[index + 1]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@pytest.fixture(scope="module")
def project_dir() -> Iterator[Path]:
    """A copy of tests/pipelines/full (src, data, env and kit files) to write fuzz cases into."""
    path = Path(tempfile.mkdtemp(prefix="pipex-fuzz-"))
    shutil.copytree(FULL, path / "p", symlinks=True)
    yield path / "p"
    shutil.rmtree(path, ignore_errors=True)


def _write(project: Path, data: bytes, name: str = "pipeline.yaml") -> Path:
    for old in ("pipeline.yml", "pipeline.yaml", "pipeline.json"):
        (project / old).unlink(missing_ok=True)
    file = project / name
    file.write_bytes(data)
    return file


def check_load(project: Path, data: bytes, name: str = "pipeline.yaml") -> str:
    """Load ``data`` as the project's pipeline: it loads, or fails as one line per problem."""
    from pipex.spec.load import load_pipeline

    file = _write(project, data, name)
    try:
        load_pipeline(file)
    except PipexError as error:
        message = str(error)
        lines = message.splitlines()
        assert lines and all(line.strip() for line in lines), repr(message)
        expected = len(error.errors) if isinstance(error, SpecErrors) else 1
        assert len(lines) == expected, f"{expected} problem(s) rendered as {len(lines)} lines: {message!r}"
        assert "Traceback" not in message
        return "rejected"
    return "accepted"


def _report(name: str, outcomes: list[str]) -> None:
    print(f"fuzz {name}: {len(outcomes)} cases, {outcomes.count('accepted')} accepted, {outcomes.count('rejected')} rejected")


def test_mutated_valid_pipelines_load_or_fail_one_line_per_problem(project_dir: Path) -> None:
    assert check_load(project_dir, _dump(BASE, "yaml")) == "accepted"
    outcomes: list[str] = []

    @SETTINGS
    @given(doc=mutated(), how=st.sampled_from(["yaml", "yaml", "json"]))
    def case(doc: Any, how: str) -> None:
        outcomes.append(check_load(project_dir, _dump(doc, how), "pipeline.json" if how == "json" else "pipeline.yaml"))

    case()
    _report("mutated", outcomes)
    assert len(outcomes) >= CASES
    assert "accepted" in outcomes and "rejected" in outcomes


def test_random_documents_load_or_fail_one_line_per_problem(project_dir: Path) -> None:
    outcomes: list[str] = []

    @SETTINGS
    @given(doc=random_docs, how=st.sampled_from(["yaml", "json"]))
    def case(doc: Any, how: str) -> None:
        outcomes.append(check_load(project_dir, _dump(doc, how), "pipeline.json" if how == "json" else "pipeline.yaml"))

    case()
    _report("random", outcomes)
    assert len(outcomes) >= CASES


def test_mangled_yaml_text_loads_or_fails_one_line_per_problem(project_dir: Path) -> None:
    outcomes: list[str] = []

    @SETTINGS
    @given(data=texts())
    def case(data: bytes) -> None:
        outcomes.append(check_load(project_dir, data))

    case()
    _report("text", outcomes)
    assert len(outcomes) >= CASES


def test_validate_cli_exits_0_or_2_without_traceback(project_dir: Path) -> None:
    """A sample of every generator through ``pipex validate`` as a real process."""
    samples: list[tuple[bytes, str]] = []

    @settings(max_examples=CLI_CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(doc=st.one_of(mutated(), random_docs), how=st.sampled_from(["yaml", "json", "text"]), text=texts())
    def collect(doc: Any, how: str, text: bytes) -> None:
        if how == "text":
            samples.append((text, "pipeline.yaml"))
        else:
            samples.append((_dump(doc, how), f"pipeline.{how}"))

    collect()
    codes = []
    for data, name in samples:
        file = _write(project_dir, data, name)
        process = subprocess.run(
            [sys.executable, "-m", "pipex", "validate", str(file)], capture_output=True, text=True, errors="replace", timeout=60
        )
        codes.append(process.returncode)
        assert process.returncode in (0, 2), (data, process.stdout, process.stderr)
        assert "Traceback" not in process.stderr, (data, process.stderr)
        if process.returncode == 2:
            lines = process.stderr.splitlines()
            assert lines and all(line.startswith("pipex: ") for line in lines), (data, process.stderr)
    print(f"fuzz cli: {len(codes)} cases, {codes.count(0)} exit 0, {codes.count(2)} exit 2")
    assert len(codes) >= CLI_CASES


@pytest.mark.parametrize("key", ["\x1e", "a\u2028b", "x\x85y", "c\rd", "e\x0bf"])
def test_line_break_in_a_key_stays_one_line_per_problem(project_dir: Path, key: str) -> None:
    """Found by the fuzz: unknown keys holding characters splitlines() breaks on split one error in two."""
    data = json.dumps({key: None, "steps": [{"id": "a", "image": "x", "cmd": "true", key: 1}]}).encode()
    assert check_load(project_dir, data, "pipeline.json") == "rejected"


CONFIG_KEYS = ["kits", "store", "workspace", "concurrency", "caBundle", "shell", "python", "node", "image", "file", "mytool"]
configs = st.recursive(values, lambda c: st.dictionaries(st.sampled_from(CONFIG_KEYS), c, max_size=4), max_leaves=15)


def test_hostile_project_config_loads_or_fails_one_line_per_problem(project_dir: Path) -> None:
    """``.pipex.yml`` is read with the pipeline: random ones fail as cleanly as bad pipelines."""
    outcomes: list[str] = []
    pipeline = (FULL / "pipeline.yaml").read_bytes()

    @settings(max_examples=max(CASES // 2, 1), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(doc=st.one_of(configs, st.dictionaries(st.sampled_from(CONFIG_KEYS), configs, max_size=4)))
    def case(doc: Any) -> None:
        (project_dir / ".pipex.yml").write_bytes(_dump(doc, "yaml"))
        outcomes.append(check_load(project_dir, pipeline))

    try:
        case()
    finally:
        shutil.copy(FULL / ".pipex.yml", project_dir / ".pipex.yml")
    _report("config", outcomes)
    assert len(outcomes) >= CASES // 2
