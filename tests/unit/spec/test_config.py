"""`.pipex.yml`: defaults without a file, every setting, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipex.spec.config import Config, KitConfig, load_config
from pipex.errors import SpecError, SpecErrors


@pytest.fixture(autouse=True)
def _spec_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPEX_CACHE_DIR", str(tmp_path_factory.mktemp("spec-cache")))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_file_gives_defaults(root: Path) -> None:
    config = load_config(root)
    assert config == Config(root=root)
    assert (config.store, config.concurrency, config.ca_bundle, config.detach, config.workspace) == (None, None, None, False, None)
    assert config.kit("python") is None


def test_every_setting(root: Path) -> None:
    (root / ".pipex.yml").write_text(
        "kits:\n"
        "  python: {image: pipex-test/python:3}\n"
        "  py: {uses: python, with: {version: '3.11'}}\n"
        "  mine: {file: kits/mine.py}\n"
        "store: .store\n"
        "concurrency: 4\n"
        "caBundle: /etc/ssl/corp.pem\n"
        "detach: true\n"
        "workspace: dev\n"
    )
    config = load_config(root)
    assert config.file == root / ".pipex.yml"
    assert config.kit("python") == KitConfig(name="python", image="pipex-test/python:3")
    assert config.kits["py"].uses == "python"
    assert dict(config.kits["py"].defaults) == {"version": "3.11"}
    assert config.kits["mine"].file == root / "kits" / "mine.py"
    assert config.store == root / ".store"
    assert config.concurrency == 4
    assert config.ca_bundle == Path("/etc/ssl/corp.pem")
    assert config.detach is True
    assert config.workspace == "dev"


def test_home_relative_store(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(root / "home"))
    (root / ".pipex.yml").write_text("store: ~/pipex-store\n")
    assert load_config(root).store == root / "home" / "pipex-store"


def test_yaml_suffix_is_accepted(root: Path) -> None:
    (root / ".pipex.yaml").write_text("concurrency: 2\n")
    assert load_config(root).concurrency == 2


def test_empty_file_is_an_error(root: Path) -> None:
    (root / ".pipex.yml").write_text("")
    with pytest.raises(SpecError) as info:
        load_config(root)
    assert str(info.value) == ".pipex.yml: file is empty"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n", [".pipex.yml:1:1: expected a mapping of settings at the top level"]),
        ("concurency: 2\n", [".pipex.yml:1:1: concurency: unknown field 'concurency' (did you mean 'concurrency'?)"]),
        ("concurrency: 0\n", [".pipex.yml:1:14: concurrency: must be at least 1, got 0"]),
        ("detach: maybe\n", [".pipex.yml:1:9: detach: expected true or false, got 'maybe'"]),
        ("kits:\n  python: {imge: x}\n", [".pipex.yml:2:12: kits.python.imge: unknown field 'imge' (did you mean 'image'?)"]),
        ("kits:\n  k: {uses: a, file: b.py}\n", [".pipex.yml:2:6: kits.k: a kit is either an alias ('uses') or a local file ('file'), not both"]),
        ("kits:\n  'a b': {image: x}\n", [".pipex.yml:2:3: kits.a b: invalid kit name 'a b': use only letters, digits, '_', '.' and '-'"]),
        ("workspace: a/b\n", [".pipex.yml:1:12: workspace: invalid value 'a/b': must match ^[A-Za-z0-9_.-]+$"]),
        # A setting that is a string or a mapping: a mapping is judged as a mapping.
        ("remote: {url: 's3://abc/x', bogus: 1}\n", [".pipex.yml:1:29: remote.bogus: unknown field 'bogus'"]),
        ("executor: {kind: dask, sheduler: 'tcp://127.0.0.1:1'}\n", [
            ".pipex.yml:1:24: executor.sheduler: unknown field 'sheduler' (did you mean 'scheduler'?)",
        ]),
        ("executor: nope\n", [".pipex.yml:1:11: executor: expected one of 'local', 'dask', 'slurm', got 'nope'"]),
        ("executor: {kind: dask, scheduler: 'http://x'}\n", [
            ".pipex.yml:1:35: executor.scheduler: a Dask scheduler is tls://host:port (or tcp:// on loopback)",
        ]),
        ("store: 3\nconcurrency: x\n", [
            ".pipex.yml:1:8: store: expected a string, got 3",
            ".pipex.yml:2:14: concurrency: expected an integer, got 'x'",
        ]),
    ],
)
def test_bad_config_is_reported_like_pipeline_errors(text: str, expected: list[str], root: Path) -> None:
    (root / ".pipex.yml").write_text(text)
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_config(root)
    assert str(info.value).splitlines() == expected


def test_config_is_cached_and_edits_are_seen(root: Path) -> None:
    (root / ".pipex.yml").write_text("concurrency: 2\n")
    assert load_config(root).concurrency == 2
    assert load_config(root).concurrency == 2
    (root / ".pipex.yml").write_text("concurrency: 5\n")
    assert load_config(root).concurrency == 5


def test_bad_config_fails_pipeline_load(root: Path) -> None:
    from pipex.spec.load import load_pipeline

    (root / "pipeline.yaml").write_text("steps:\n  - id: a\n    image: x\n    cmd: y\n")
    (root / ".pipex.yml").write_text("concurrency: -1\n")
    with pytest.raises(SpecError) as info:
        load_pipeline()
    assert str(info.value) == ".pipex.yml:1:14: concurrency: must be at least 1, got -1"


def test_relative_root_gives_absolute_paths(root: Path) -> None:
    (root / ".pipex.yml").write_text("store: .store\nkits:\n  k: {file: k.py}\n")
    config = load_config(Path("."))
    assert config.root == root.resolve()
    assert config.store == root.resolve() / ".store"
    assert config.kits["k"].file == root.resolve() / "k.py"
