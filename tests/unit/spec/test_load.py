"""Loading valid pipelines: file discovery, normal forms, ids, env layers, paths."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from pipex.spec.load import find_pipeline_file, load_pipeline
from pipex.spec.model import CacheSpec, InputRef, PathMapping, Resources, SecretSpec

FULL = Path(__file__).resolve().parents[2] / "pipelines" / "full"
STEP = "  - id: a\n    image: alpine:3.20\n    cmd: echo\n"


@pytest.fixture
def full(tmp_path: Path) -> Path:
    """A copy of tests/pipelines/full (so moving it is possible)."""
    target = tmp_path / "full"
    shutil.copytree(FULL, target)
    return target


def test_full_fixture_loads_every_field(full: Path) -> None:
    pipeline = load_pipeline(full)
    assert pipeline.id == "full-example"
    assert pipeline.name == "Full Example"
    assert pipeline.root == full.resolve()
    assert pipeline.file == full / "pipeline.yaml"
    assert pipeline.step_ids == ("fetch-data", "build", "fetch-data-2", "tool")
    fetch = pipeline.step("fetch-data")
    assert fetch.cmd == ("sh", "-e", "-c", "echo hi > /output/a.txt")
    assert (fetch.allow_network, fetch.timeout_sec, fetch.retries, fetch.retry_delay_ms) == (True, 30.0, 2, 100)
    build = pipeline.step("build")
    assert build.cmd == ("make", "-C", "/src")
    assert build.setup is not None
    assert build.setup.cmd == ("sh", "-e", "-c", "apk add make")
    assert build.setup.caches == (CacheSpec("apk", "/var/cache/apk", True),)
    assert build.setup.allow_network is True
    assert build.inputs == (InputRef("fetch-data"), InputRef("fetch-data-2", copy_to_output=True, optional=True))
    assert dict(build.env) == {"FROM_FILE": "file", "SHARED": "step", "LEVEL": "3", "DEBUG": "false", "EMPTY": ""}
    assert build.output_path == "/out"
    assert build.mounts == (PathMapping("data", "/data"),)
    assert build.sources == (PathMapping("src", "/src"),)
    assert build.caches == (CacheSpec("ccache", "/root/.ccache", False),)
    assert build.condition == 'env.CI && env.NODE_ENV != "dev"'
    assert build.allow_failure and build.read_only_rootfs
    assert (build.user, build.cap_drop, build.runtime) == ("1000:1000", ("ALL",), "runsc")
    assert build.resources == Resources(cpus=1.5, memory="512m", pids=100)
    assert build.secrets == (SecretSpec("token", env="API_TOKEN"), SecretSpec("key", file="keys/id.pem"))
    assert build.kit is None
    tool = pipeline.step("tool")
    assert (tool.image, tool.cmd, tool.kit) == ("busybox:1", ("echo", "hello", "tool"), "mytool")


def test_moving_the_project_keeps_host_paths_relative(full: Path, tmp_path: Path) -> None:
    before = load_pipeline(full)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    full.rename(moved)
    after = load_pipeline(moved)
    assert after.root == moved.resolve()
    assert after.steps == before.steps


def test_directory_lookup_prefers_yml_then_yaml_then_json(project: Callable[..., Path]) -> None:
    root = project({"pipeline.json": '{"steps": [{"id": "j", "image": "x", "cmd": "y"}]}'})
    assert find_pipeline_file() == root / "pipeline.json"
    project({"pipeline.yaml": "steps:\n" + STEP})
    assert find_pipeline_file() == root / "pipeline.yaml"
    project({"pipeline.yml": "steps:\n" + STEP})
    assert find_pipeline_file(root) == root / "pipeline.yml"


def test_explicit_file_with_any_name_is_loaded(project: Callable[..., Path]) -> None:
    root = project({"ci/build.yaml": "steps:\n" + STEP})
    pipeline = load_pipeline(Path("ci/build.yaml"))
    assert pipeline.root == (root / "ci").resolve()
    assert pipeline.id == "ci"


def test_json_pipeline_loads(project: Callable[..., Path]) -> None:
    project({"pipeline.json": '{"id": "p", "steps": [{"id": "j", "image": "x", "cmd": ["a", "b"]}]}'})
    pipeline = load_pipeline()
    assert (pipeline.id, pipeline.steps[0].cmd) == ("p", ("a", "b"))


def test_pipeline_id_defaults_to_slugified_name_then_directory(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "name: My Data Pipeline!\nsteps:\n" + STEP})
    assert load_pipeline().id == "my-data-pipeline"
    project({"pipeline.yaml": "steps:\n" + STEP})
    assert load_pipeline().id == "project"


def test_step_id_is_slugified_from_name(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n  - name: Train Model (GPU)\n    image: x\n    cmd: y\n"})
    step = load_pipeline().steps[0]
    assert (step.id, step.name) == ("train-model-gpu", "Train Model (GPU)")


def test_yaml_keys_stay_text(project: Callable[..., Path]) -> None:
    # YAML 1.1 reads `on`/`yes` keys as booleans; env names are always text.
    project({"pipeline.yaml": "steps:\n" + STEP + "    env: {ON: 1, yes: 2}\n"})
    assert dict(load_pipeline().steps[0].env) == {"ON": "1", "yes": "2"}


def test_defaults_of_optional_fields(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n" + STEP})
    step = load_pipeline().steps[0]
    assert (step.output_path, step.retries, step.retry_delay_ms, step.timeout_sec) == ("/output", 0, 5000, None)
    assert (step.setup, step.condition, step.resources, dict(step.env)) == (None, None, None, {})


def test_boolean_condition_becomes_literal(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n" + STEP + "    if: false\n"})
    assert load_pipeline().steps[0].condition == "false"


def test_symlink_inside_the_project_is_accepted(project: Callable[..., Path]) -> None:
    root = project({"pipeline.yaml": "steps:\n" + STEP + "    mounts: [{host: latest, container: /d}]\n", "v2/x": "1"})
    (root / "latest").symlink_to(root / "v2")
    assert load_pipeline().steps[0].mounts == (PathMapping("latest", "/d"),)


def test_whole_project_can_be_mounted(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n" + STEP + "    sources: [{host: ./, container: /w/}]\n"})
    assert load_pipeline().steps[0].sources == (PathMapping(".", "/w"),)


def test_env_precedence_step_env_over_envfile_over_cli_over_kit(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x}\n"
            "    envFile: [one.env, two.env]\n    env: {STEP: step}\n",
            "one.env": "STEP=one\nFILE=one\nPYTHONUNBUFFERED=0\n",
            "two.env": "FILE=two\n",
            "cli.env": "STEP=cli\nFILE=cli\nCLI=cli\nPYTHONDONTWRITEBYTECODE=cli\n",
        }
    )
    env = dict(load_pipeline(env_files=["cli.env"]).steps[0].env)
    assert env == {
        "STEP": "step",
        "FILE": "two",
        "CLI": "cli",
        "PYTHONUNBUFFERED": "0",
        "PYTHONDONTWRITEBYTECODE": "cli",
    }


def test_later_cli_env_file_wins(project: Callable[..., Path]) -> None:
    project({"pipeline.yaml": "steps:\n" + STEP, "a.env": "X=a\nY=a\n", "b.env": "X=b\n"})
    assert dict(load_pipeline(env_files=["a.env", "b.env"]).steps[0].env) == {"X": "b", "Y": "a"}


def test_user_fields_merge_over_kit_defaults(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: a\n    uses: python\n    with: {run: x, packages: [numpy]}\n"
            "    caches: [{name: data, path: /data}]\n"
            "    setup: {cmd: echo extra, caches: [{name: pip-cache, path: /pip, exclusive: true}]}\n"
            "    mounts: [{host: ., container: /project}]\n    allowNetwork: true\n",
        }
    )
    step = load_pipeline().steps[0]
    assert step.setup is not None
    assert step.setup.cmd[-1].endswith("\necho extra")
    assert step.setup.caches == (CacheSpec("pip-cache", "/pip", True),)
    assert step.setup.allow_network is True
    assert step.caches == (CacheSpec("data", "/data"),)
    assert step.mounts == (PathMapping(".", "/project"),)
    assert step.allow_network is True


def test_yaml_anchors_and_merge_keys_with_x_extension_fields(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "x-defaults: &defaults\n  image: alpine:3.20\n  retries: 2\n"
            "steps:\n  - <<: *defaults\n    id: a\n    cmd: echo\n"
            "  - <<: *defaults\n    id: b\n    cmd: echo\n    retries: 1\n"
        }
    )
    steps = load_pipeline().steps
    assert [(s.id, s.image, s.retries) for s in steps] == [("a", "alpine:3.20", 2), ("b", "alpine:3.20", 1)]
