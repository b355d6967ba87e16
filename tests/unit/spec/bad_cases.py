"""The table of invalid pipelines: files to write, and the exact error lines pipex must print."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

OK_STEP = "  - id: build\n    image: alpine:3.20\n    cmd: make\n"


@dataclass(frozen=True)
class Case:
    """One invalid project: ``files`` written into the project dir, ``expected`` error lines."""

    id: str
    files: dict[str, str | bytes]
    expected: list[str]
    prepare: Callable[[Path], None] | None = None
    env_files: tuple[str, ...] = ()
    pipeline: str | None = None


def _symlink_out(root: Path) -> None:
    os.symlink(root.parent, root / "escape")


CASES: list[Case] = [
    Case("empty-file", {"pipeline.yaml": ""}, ["pipeline.yaml: file is empty"]),
    Case("only-comments", {"pipeline.yaml": "# nothing\n"}, ["pipeline.yaml: file is empty"]),
    Case("top-level-list", {"pipeline.yaml": "- id: a\n"}, ["pipeline.yaml:1:1: expected a mapping with 'steps' at the top level, got a list"]),
    Case("top-level-scalar", {"pipeline.yaml": "hello\n"}, ["pipeline.yaml:1:1: expected a mapping with 'steps' at the top level, got str 'hello'"]),
    Case("yaml-syntax", {"pipeline.yaml": "steps:\n  - id: a\n   image: x\n"}, ["pipeline.yaml:3:4: invalid YAML: did not find expected '-' indicator"]),
    Case("bad-utf8", {"pipeline.yaml": b"steps:\n  - id: \xff\n"}, ['pipeline.yaml:2:9: file is not valid UTF-8']),
    Case("json-syntax", {"pipeline.json": '{"steps": [\n  {"id": "a",}\n]}\n'}, ['pipeline.json:2:14: invalid JSON: Expecting property name enclosed in double quotes']),
    Case("no-pipeline", {"README": "x"}, ['no pipeline file (pipeline.yml, pipeline.yaml, pipeline.json) in the current directory']),
    Case("pipeline-file-missing", {"pipeline.yaml": "steps: []\n"}, ['pipline.yaml: no such file or directory'], pipeline="pipline.yaml"),
    Case("duplicate-key", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    image: y\n    cmd: c\n"}, ["pipeline.yaml:4:5: duplicate key 'image'"]),
    Case("missing-steps", {"pipeline.yaml": "id: p\n"}, ["pipeline.yaml:1:1: missing required field 'steps'"]),
    Case("empty-steps", {"pipeline.yaml": "steps: []\n"}, ['pipeline.yaml:1:8: steps: must not be empty']),
    Case("unknown-top-field", {"pipeline.yaml": "stpes: []\nsteps:\n" + OK_STEP}, ["pipeline.yaml:1:1: stpes: unknown field 'stpes' (did you mean 'steps'?)"]),
    Case("unknown-step-field", {"pipeline.yaml": "steps:\n" + OK_STEP + "    timeout: 5\n"}, ["pipeline.yaml:5:5: steps[0].timeout: unknown field 'timeout' (did you mean 'timeoutSec'?)"]),
    Case("missing-cmd", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n"}, ["pipeline.yaml:2:5: steps[0]: missing required field 'cmd' (a step needs 'image' and 'cmd', or 'uses' with a kit)"]),
    Case("no-id-no-name", {"pipeline.yaml": "steps:\n  - image: x\n    cmd: y\n"}, ["pipeline.yaml:2:5: steps[0]: a step needs an 'id' or a 'name'"]),
    Case("uses-with-image", {"pipeline.yaml": "steps:\n  - id: a\n    uses: shell\n    image: x\n    with: {run: y}\n"}, ["pipeline.yaml:2:5: steps[0]: 'image' and 'cmd' cannot be combined with 'uses' (pass the kit 'with: {image: ..., run: ...}' instead)"]),
    Case("bad-id", {"pipeline.yaml": "steps:\n  - id: build it\n    image: x\n    cmd: y\n"}, ["pipeline.yaml:2:9: steps[0].id: invalid id 'build it': use only letters, digits, '_' and '-', not starting with '-'"]),
    Case("bad-cmd-type", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    cmd: 5\n"}, ['pipeline.yaml:4:10: steps[0].cmd: expected a string or a list, got 5']),
    Case("empty-cmd-list", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    cmd: []\n"}, ['pipeline.yaml:4:10: steps[0].cmd: must not be empty']),
    Case("negative-retries", {"pipeline.yaml": "steps:\n" + OK_STEP + "    retries: -1\n"}, ['pipeline.yaml:5:14: steps[0].retries: must be at least 0, got -1']),
    Case("zero-timeout", {"pipeline.yaml": "steps:\n" + OK_STEP + "    timeoutSec: 0\n"}, ['pipeline.yaml:5:17: steps[0].timeoutSec: must be greater than 0, got 0']),
    Case("bool-as-string", {"pipeline.yaml": "steps:\n" + OK_STEP + "    allowFailure: 'yes'\n"}, ["pipeline.yaml:5:19: steps[0].allowFailure: expected true or false, got 'yes'"]),
    Case("bad-env-name", {"pipeline.yaml": "steps:\n" + OK_STEP + "    env: {1BAD: x}\n"}, ["pipeline.yaml:5:11: steps[0].env.1BAD: invalid environment variable name '1BAD'"]),
    Case("env-value-list", {"pipeline.yaml": "steps:\n" + OK_STEP + "    env: {A: [1]}\n"}, ['pipeline.yaml:5:14: steps[0].env.A: expected a string, a number, true or false or null, got a list']),
    Case("secret-both", {"pipeline.yaml": "steps:\n" + OK_STEP + "    secrets: [{name: t, file: a, env: B}]\n"}, ["pipeline.yaml:5:15: steps[0].secrets[0]: a secret needs exactly one of 'file' or 'env'"]),
    Case("bad-memory", {"pipeline.yaml": "steps:\n" + OK_STEP + "    resources: {memory: lots}\n"}, ["pipeline.yaml:5:25: steps[0].resources.memory: invalid value 'lots': must match ^[0-9]+[bkmgBKMG]?$"]),
    Case("duplicate-id", {"pipeline.yaml": "steps:\n" + OK_STEP + OK_STEP}, ["pipeline.yaml:5:9: steps[1].id: duplicate step id 'build' (also steps[0])"]),
    Case("duplicate-slug", {"pipeline.yaml": "steps:\n  - name: Build It\n    image: x\n    cmd: y\n  - id: build-it\n    image: x\n    cmd: y\n"}, ["pipeline.yaml:5:9: steps[1].id: duplicate step id 'build-it' (also steps[0])"]),
    Case("unslugifiable-name", {"pipeline.yaml": "steps:\n  - name: '!!!'\n    image: x\n    cmd: y\n"}, ["pipeline.yaml:2:11: steps[0].name: cannot derive an id from name '!!!'; add an 'id'"]),
    Case("unknown-input", {"pipeline.yaml": "steps:\n" + OK_STEP + "  - id: test\n    image: x\n    cmd: y\n    inputs: [{step: bulid}]\n"}, ["pipeline.yaml:8:21: steps[1].inputs[0].step: unknown step 'bulid' (did you mean 'build'?)"]),
    Case("unknown-input-bare", {"pipeline.yaml": "steps:\n" + OK_STEP + "  - id: test\n    image: x\n    cmd: y\n    inputs: [biuld]\n"}, ["pipeline.yaml:8:14: steps[1].inputs[0]: unknown step 'biuld' (did you mean 'build'?)"]),
    Case("input-twice", {"pipeline.yaml": "steps:\n" + OK_STEP + "  - id: test\n    image: x\n    cmd: y\n    inputs: [build, build]\n"}, ["pipeline.yaml:8:21: steps[1].inputs[1]: input 'build' is listed twice"]),
    Case("self-cycle", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    cmd: y\n    inputs: [a]\n"}, ['pipeline.yaml:5:14: steps[0].inputs[0]: dependency cycle: a -> a']),
    Case("three-cycle", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    cmd: y\n    inputs: [c]\n  - id: b\n    image: x\n    cmd: y\n    inputs: [a]\n  - id: c\n    image: x\n    cmd: y\n    inputs: [b]\n"}, ['pipeline.yaml:9:14: steps[1].inputs[0]: dependency cycle: a -> b -> c -> a']),
    Case("host-absolute", {"pipeline.yaml": "steps:\n" + OK_STEP + "    mounts: [{host: /etc, container: /etc2}]\n"}, ["pipeline.yaml:5:21: steps[0].mounts[0].host: must be a path relative to the project root, got '/etc'"]),
    Case("host-dotdot", {"pipeline.yaml": "steps:\n" + OK_STEP + "    mounts: [{host: src/../../x, container: /x}]\n"}, ["pipeline.yaml:5:21: steps[0].mounts[0].host: 'src/../../x' is outside the project root"]),
    Case("host-symlink-escape", {"pipeline.yaml": "steps:\n" + OK_STEP + "    sources: [{host: escape, container: /x}]\n"}, ["pipeline.yaml:5:22: steps[0].sources[0].host: 'escape' resolves outside the project root (through a symlink)"], prepare=_symlink_out),
    Case("host-missing", {"pipeline.yaml": "steps:\n" + OK_STEP + "    mounts: [{host: data, container: /data}]\n"}, ["pipeline.yaml:5:21: steps[0].mounts[0].host: 'data' does not exist in the project root"]),
    Case("container-relative", {"pipeline.yaml": "steps:\n" + OK_STEP + "    mounts: [{host: ., container: data}]\n"}, ["pipeline.yaml:5:35: steps[0].mounts[0].container: must be an absolute container path, got 'data'"]),
    Case("container-dotdot", {"pipeline.yaml": "steps:\n" + OK_STEP + "    outputPath: /out/../etc\n"}, ["pipeline.yaml:5:17: steps[0].outputPath: must not contain '..', got '/out/../etc'"]),
    Case("container-clash", {"pipeline.yaml": "steps:\n" + OK_STEP + "    mounts: [{host: ., container: /output}]\n"}, ["pipeline.yaml:5:35: steps[0].mounts[0].container: container path '/output' is already used by outputPath"]),
    Case("cache-dotdot", {"pipeline.yaml": "steps:\n" + OK_STEP + "    caches: [{name: '..', path: /c}]\n"}, ["pipeline.yaml:5:21: steps[0].caches[0].name: invalid cache name '..': use only letters, digits, '_', '.' and '-', not starting with '.' or '-'"]),
    Case("cache-slash", {"pipeline.yaml": "steps:\n" + OK_STEP + "    caches: [{name: a/b, path: /c}]\n"}, ["pipeline.yaml:5:21: steps[0].caches[0].name: invalid cache name 'a/b': use only letters, digits, '_', '.' and '-', not starting with '.' or '-'"]),
    Case("cache-twice", {"pipeline.yaml": "steps:\n" + OK_STEP + "    caches: [{name: c, path: /c}, {name: c, path: /d}]\n"}, ["pipeline.yaml:5:42: steps[0].caches[1].name: cache 'c' is listed twice"]),
    Case("bad-condition", {"pipeline.yaml": "steps:\n" + OK_STEP + "    if: env.A ==\n"}, ["pipeline.yaml:5:9: steps[0].if: invalid condition 'env.A ==': syntax error"]),
    Case("condition-call", {"pipeline.yaml": "steps:\n" + OK_STEP + "    if: open('x')\n"}, ['pipeline.yaml:5:9: steps[0].if: invalid condition "open(\'x\')": only env.NAME, literals, ==, !=, <, >, !, &&, || and parentheses are allowed']),
    Case("envfile-missing", {"pipeline.yaml": "steps:\n" + OK_STEP + "    envFile: .env\n"}, ["pipeline.yaml:5:14: steps[0].envFile: '.env' does not exist in the project root"]),
    Case("envfile-bad-line", {"pipeline.yaml": "steps:\n" + OK_STEP + "    envFile: .env\n", ".env": "A=1\nnot a line\n"}, [".env:2:1: expected KEY=VALUE, got 'not a line'"]),
    Case("cli-envfile-bad", {"pipeline.yaml": "steps:\n" + OK_STEP, "ci.env": "A='x\n"}, ["ci.env:1: unterminated single quote in value of 'A'"], env_files=("ci.env",)),
    Case("unknown-kit", {"pipeline.yaml": "steps:\n  - id: a\n    uses: pyhton\n    with: {run: x}\n"}, ["pipeline.yaml:3:11: steps[0].uses: unknown kit 'pyhton' (did you mean 'python'?)"]),
    Case("kit-missing-param", {"pipeline.yaml": "steps:\n  - id: a\n    uses: shell\n    with: {packages: [curl]}\n"}, ["pipeline.yaml:4:11: steps[0].with: missing required field 'run'"]),
    Case("kit-unknown-param", {"pipeline.yaml": "steps:\n  - id: a\n    uses: shell\n    with: {run: x, pakages: [curl]}\n"}, ["pipeline.yaml:4:20: steps[0].with.pakages: unknown field 'pakages' (did you mean 'packages'?)"]),
    Case("kit-bad-enum", {"pipeline.yaml": "steps:\n  - id: a\n    uses: node\n    with: {run: x, packageManager: bun}\n"}, ["pipeline.yaml:4:36: steps[0].with.packageManager: expected one of 'npm', 'pnpm', 'yarn', got 'bun'"]),
    Case("kit-script-and-run", {"pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, script: y.py}\n"}, ["pipeline.yaml:4:11: steps[0].with: needs exactly one of 'script' or 'run'"]),
    Case("kit-requirements-missing", {"pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, src: src, requirements: req.txt}\n", "src/a.py": ""}, ["pipeline.yaml:4:44: steps[0].with.requirements: no file 'req.txt' in 'src'"]),
    Case("kit-package-option", {"pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, packages: [--index-url=evil]}\n"}, ["pipeline.yaml:4:31: steps[0].with.packages[0]: invalid package '--index-url=evil': one word, not starting with '-'"]),
    Case("kit-src-outside", {"pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, src: ../elsewhere}\n"}, ["pipeline.yaml:4:25: steps[0].with.src: '../elsewhere' is outside the project root"]),
    Case("with-without-uses", {"pipeline.yaml": "steps:\n" + OK_STEP + "    with: {run: x}\n"}, ["pipeline.yaml:2:5: steps[0]: 'with' needs 'uses'"]),
    Case("several-errors", {"pipeline.yaml": "steps:\n  - id: a\n    image: x\n    cmd: y\n    retries: -2\n    timout: 3\n  - id: b\n    image: x\n"}, [
        'pipeline.yaml:5:14: steps[0].retries: must be at least 0, got -2',
        "pipeline.yaml:6:5: steps[0].timout: unknown field 'timout' (did you mean 'timeoutSec'?)",
        "pipeline.yaml:7:5: steps[1]: missing required field 'cmd' (a step needs 'image' and 'cmd', or 'uses' with a kit)",
    ]),
    # Hostile files (issue 10): each one line, exit 2, never a hang or a traceback.
    Case("alias-bomb", {"pipeline.yaml": "x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\nx-a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\nx-a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\nx-a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\nx-a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\nx-a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\nx-a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\nx-a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\nsteps:\n  - {id: a, image: x, cmd: *a7}\n"}, ["pipeline.yaml:6:7: aliases expand to more than 1,000,000 values (an alias bomb?)"]),
    Case("recursive-alias", {"pipeline.yaml": "x-r: &r [*r]\nsteps:\n" + OK_STEP}, ["pipeline.yaml:1:6: an alias refers to a node that contains it (a recursive structure)"]),
    Case("huge-int-yaml", {"pipeline.yaml": "steps:\n" + OK_STEP + "    timeoutSec: " + "9" * 5000 + "\n"}, ["pipeline.yaml: invalid YAML: a number has more than 4300 digits"]),
    Case("huge-int-json", {"pipeline.json": '{"steps": [{"id": "a", "image": "x", "cmd": "y", "retries": ' + "9" * 5000 + '}]}'}, ["pipeline.json: invalid JSON: a number has more than 4300 digits"]),
    Case("deep-json", {"pipeline.json": '{"steps": ' + "[" * 5000 + "]" * 5000 + "}"}, ["pipeline.json: the document nests more than 100 levels deep"]),
    Case("retry-delay-overflow", {"pipeline.yaml": "steps:\n" + OK_STEP + "    retries: 2\n    retryDelayMs: " + "9" * 40 + "\n"}, ["pipeline.yaml:6:19: steps[0].retryDelayMs: must be at most 3600000, got " + "9" * 40]),
    Case("id-too-long", {"pipeline.yaml": "steps:\n  - id: " + "a" * 101 + "\n    image: x\n    cmd: y\n"}, ["pipeline.yaml:2:9: steps[0].id: id is too long: at most 100 characters (it names files in the store)"]),
    Case("pipeline-id-dash", {"pipeline.yaml": "id: -p\nsteps:\n" + OK_STEP}, ["pipeline.yaml:1:5: id: invalid id '-p': use only letters, digits, '_' and '-', not starting with '-'"]),
    Case("deep-if", {"pipeline.yaml": "steps:\n" + OK_STEP + "    if: '" + "!" * 1500 + "1'\n"}, ["pipeline.yaml:5:9: steps[0].if: invalid condition '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!…!!!!!!!!!!!!!1' (1503 characters): nested too deeply"]),
]
