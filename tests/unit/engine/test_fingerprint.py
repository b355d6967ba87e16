"""Fingerprint documents, canonical hashing, host trees and the stat cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipex.engine.hosts as fp_module
from pipex.engine.fingerprint import FORMAT_VERSION, canonical_json, fingerprint_of, step_document
from pipex.engine.hosts import HostHasher
from pipex.errors import HostPathError
from pipex.store.objects import hash_file
from pipex.spec.model import CacheSpec, InputRef, PathMapping, SetupSpec, Step

OLD = time.time() - 3600


@pytest.fixture(autouse=True)
def _no_racy_window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Files made by a test are seconds old at most; the racy rule (tested on its own) would distrust them all.
    if "racy" not in request.node.name:
        monkeypatch.setattr(fp_module, "_RACY_NS", -(10**18))


def _write(path: Path, text: str, *, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    os.utime(path, (OLD, OLD))
    return path


def _step(**fields: object) -> Step:
    base: dict[str, object] = {
        "id": "stats",
        "image": "python:3.12-slim",
        "cmd": ("python", "/src/stats.py"),
        "inputs": (InputRef("fetch"),),
        "env": {"MODE": "fast"},
        "mounts": (PathMapping("data", "/data"),),
        "sources": (PathMapping("scripts", "/src"),),
        "caches": (CacheSpec("pip", "/root/.cache/pip"),),
    }
    base.update(fields)
    return Step(**base)  # type: ignore[arg-type]


def _doc(step: Step, **overrides: object) -> dict:
    kwargs: dict = {
        "image_id": "sha256:" + "a" * 64,
        "input_trees": {"fetch": "t" * 32},
        "host_trees": {"data": "d" * 32, "scripts": "s" * 32},
    }
    kwargs.update(overrides)
    return step_document(step, **kwargs)


# Golden values: a change here changes every user's fingerprints -> bump FORMAT_VERSION.
GOLDEN_FINGERPRINT = "f129b302004364925f6a1e0b2f4a310e"  # format 2
GOLDEN_TREE = "6ce1af36c8a9f3a1308b7e2ec2e7d8a1"  # format 2: directories listed


def test_canonical_json_sorts_keys_without_whitespace_in_utf8() -> None:
    assert canonical_json({"b": [1, 2], "a": "é"}) == '{"a":"é","b":[1,2]}'.encode("utf-8")


def test_fingerprint_is_xxh3_128_hex_of_canonical_json() -> None:
    import xxhash

    doc = {"format": FORMAT_VERSION, "cmd": ["true"]}
    assert fingerprint_of(doc) == xxhash.xxh3_128_hexdigest(canonical_json(doc))
    assert len(fingerprint_of(doc)) == 32


def test_golden_fingerprint_is_stable() -> None:
    assert fingerprint_of(_doc(_step())) == GOLDEN_FINGERPRINT


def test_fingerprint_is_the_same_in_another_process() -> None:
    code = (
        "import sys; sys.path.insert(0, 'tests/unit/engine');"
        "from test_fingerprint import _doc, _step;"
        "from pipex.engine.fingerprint import fingerprint_of;"
        "print(fingerprint_of(_doc(_step())))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.stdout.strip() == fingerprint_of(_doc(_step()))


def test_document_holds_every_component() -> None:
    step = _step(
        setup=SetupSpec(("pip", "install", "x"), allow_network=True),
        allow_network=False,
        output_path="/out",
        user="1000",
        runtime="runsc",
        read_only_rootfs=True,
        cap_drop=("NET_RAW", "ALL"),
    )
    doc = _doc(step)
    assert doc["format"] == FORMAT_VERSION
    assert doc["image"] == "sha256:" + "a" * 64
    assert doc["imageRef"] == "python:3.12-slim"
    assert doc["cmd"] == ["python", "/src/stats.py"]
    assert doc["setup"] == {"cmd": ["pip", "install", "x"], "network": True}
    assert doc["env"] == {"MODE": "fast"}
    assert doc["outputPath"] == "/out"
    assert doc["network"] is False
    assert doc["inputs"] == {"fetch": {"tree": "t" * 32, "copyToOutput": False, "optional": False}}
    assert doc["mounts"] == [{"host": "data", "container": "/data", "tree": "d" * 32}]
    assert doc["sources"] == [{"host": "scripts", "container": "/src", "tree": "s" * 32}]
    assert doc["caches"] == [["pip", "/root/.cache/pip"]]
    assert (doc["user"], doc["runtime"], doc["readOnlyRootfs"], doc["capDrop"]) == ("1000", "runsc", True, ["ALL", "NET_RAW"])


@pytest.mark.parametrize(
    "change",
    [
        {"timeout_sec": 30.0},
        {"retries": 3},
        {"retry_delay_ms": 10},
        {"allow_failure": True},
        {"name": "Statistics"},
    ],
)
def test_settings_that_do_not_change_results_leave_the_fingerprint(change: dict) -> None:
    assert fingerprint_of(_doc(_step(**change))) == fingerprint_of(_doc(_step()))


@pytest.mark.parametrize(
    "change",
    [
        {"cmd": ("python", "/src/other.py")},
        {"env": {"MODE": "slow"}},
        {"output_path": "/out"},
        {"allow_network": True},
        {"setup": SetupSpec(("true",))},
        {"caches": (CacheSpec("npm", "/root/.npm"),)},
        {"user": "1000"},
        {"runtime": "runsc"},
        {"read_only_rootfs": True},
        {"cap_drop": ("ALL",)},
        {"inputs": (InputRef("fetch", copy_to_output=True),)},
    ],
)
def test_settings_that_change_results_change_the_fingerprint(change: dict) -> None:
    assert fingerprint_of(_doc(_step(**change))) != fingerprint_of(_doc(_step()))


def test_input_content_not_run_decides() -> None:
    same = fingerprint_of(_doc(_step(), input_trees={"fetch": "x" * 32}))
    assert same == fingerprint_of(_doc(_step(), input_trees={"fetch": "x" * 32}))
    assert same != fingerprint_of(_doc(_step(), input_trees={"fetch": "y" * 32}))


def test_image_id_is_hashed_but_the_ref_is_not() -> None:
    base = fingerprint_of(_doc(_step()))
    assert fingerprint_of(_doc(_step(image="mirror.example/python:3.12-slim"))) == base
    assert fingerprint_of(_doc(_step(), image_id="sha256:" + "b" * 64)) != base


def test_missing_input_tree_is_a_bug_not_a_silent_default() -> None:
    with pytest.raises(KeyError, match="fetch"):
        _doc(_step(), input_trees={})


# -- host trees -------------------------------------------------------------------


def _project(root: Path) -> Path:
    _write(root / "data" / "a.csv", "1,2\n")
    _write(root / "data" / "sub" / "b.csv", "3,4\n")
    _write(root / "scripts" / "run.sh", "echo hi\n", mode=0o755)
    return root


def test_hash_file_matches_the_store_object_id(tmp_path: Path) -> None:
    import xxhash

    path = _write(tmp_path / "f", "hello")
    assert hash_file(path) == xxhash.xxh3_128_hexdigest(b"hello")
    try:
        from pipex.store import hash_file as store_hash_file  # type: ignore[attr-defined]
    except ImportError:
        pytest.skip("the store's hash_file has not landed")
    assert store_hash_file(path) == hash_file(path)


def test_golden_tree_hash(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    tree = HostHasher(root, None).hash_tree("data")
    assert sorted(tree.files) == ["data/a.csv", "data/sub", "data/sub/b.csv"]
    assert tree.tree_hash == GOLDEN_TREE


def test_moving_the_project_keeps_tree_hashes_and_fingerprints(tmp_path: Path) -> None:
    first = _project(tmp_path / "one")
    second = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, second, symlinks=True)
    for root in (first, second):
        hasher = HostHasher(root, tmp_path / "cache")
        trees = {p: hasher.hash_tree(p).tree_hash for p in ("data", "scripts")}
        if root is first:
            expected = trees
    assert trees == expected


def test_single_file_host_path(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    tree = HostHasher(root, None).hash_tree("data/a.csv")
    assert list(tree.files) == ["data/a.csv"]


def test_symlinks_are_hashed_as_links_not_followed(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    os.symlink("a.csv", root / "data" / "link")
    hasher = HostHasher(root, None)
    before = hasher.hash_tree("data")
    assert before.files["data/link"] == "l:a.csv"
    _write(root / "data" / "a.csv", "changed\n")
    after = hasher.hash_tree("data")
    assert after.files["data/link"] == "l:a.csv"
    (root / "data" / "link").unlink()
    os.symlink("sub/b.csv", root / "data" / "link")
    assert hasher.hash_tree("data").files["data/link"] == "l:sub/b.csv"


def test_executable_bit_changes_the_tree(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    hasher = HostHasher(root, None)
    before = hasher.hash_tree("scripts").tree_hash
    (root / "scripts" / "run.sh").chmod(0o644)
    assert hasher.hash_tree("scripts").tree_hash != before


def test_missing_host_path_is_a_clear_error(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    with pytest.raises(HostPathError, match="host path 'nope' does not exist"):
        HostHasher(root, None).hash_tree("nope")


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []

    def counting(path: str) -> str:
        reads.append(path)
        return hash_file(path)

    monkeypatch.setattr(fp_module, "hash_file", counting)
    return reads


def test_stat_cache_reads_no_content_when_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p")
    reads = _count_reads(monkeypatch)
    first = HostHasher(root, tmp_path / "statcache")
    tree = first.hash_tree("data")
    first.save()
    assert len(reads) == 2
    reads.clear()
    # A new hasher (as in a new process) loads the cache from disk.
    second = HostHasher(root, tmp_path / "statcache")
    assert second.hash_tree("data") == tree
    assert reads == []


def test_stat_cache_rereads_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p")
    reads = _count_reads(monkeypatch)
    hasher = HostHasher(root, tmp_path / "statcache")
    hasher.hash_tree("data")
    reads.clear()
    _write(root / "data" / "a.csv", "5,6\n")
    hasher.hash_tree("data")
    assert [Path(p).name for p in reads] == ["a.csv"]


def test_racy_clean_files_are_not_trusted_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every file here was written (ctime) within the racy window: an edit in the
    # same timestamp tick would be invisible to stat, so each is read again.
    root = _project(tmp_path / "p")
    reads = _count_reads(monkeypatch)
    hasher = HostHasher(root, tmp_path / "statcache")
    hasher.hash_tree("data")
    reads.clear()
    hasher.hash_tree("data")
    assert sorted(Path(p).name for p in reads) == ["a.csv", "b.csv"]


def test_stat_cache_lives_outside_the_project_and_survives_damage(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    hasher = HostHasher.for_store(tmp_path / "store", root)
    tree = hasher.hash_tree("data")
    hasher.save()
    files = list((tmp_path / "store" / "statcache").glob("*.marshal"))
    assert len(files) == 1
    files[0].write_bytes(b"garbage")
    assert HostHasher.for_store(tmp_path / "store", root).hash_tree("data") == tree


def test_recheck_names_files_changed_since_hashing(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    hasher = HostHasher(root, None)
    before = hasher.hash_tree("data")
    assert hasher.recheck("data", before) == []
    _write(root / "data" / "sub" / "b.csv", "changed\n")
    _write(root / "data" / "new.csv", "new\n")
    (root / "data" / "a.csv").unlink()
    assert hasher.recheck("data", before) == ["data/a.csv", "data/new.csv", "data/sub/b.csv"]


def test_listing_of_an_earlier_state_survives_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p")
    first = HostHasher(root, tmp_path / "statcache")
    before = first.hash_tree("data")
    first.save()
    manifests = tmp_path / "statcache"
    assert not list(manifests.glob("*.manifests/*"))  # first sight of a tree writes no listing
    # A new process: the current state's listing comes from the stat cache record.
    second = HostHasher(root, tmp_path / "statcache")
    assert second.manifest(before.tree_hash) == dict(before.files)
    _write(root / "data" / "a.csv", "changed\n")
    reads = _count_reads(monkeypatch)
    after = second.hash_tree("data")
    second.save()
    assert [Path(p).name for p in reads] == ["a.csv"]  # the old listing was derived, not re-read
    third = HostHasher(root, tmp_path / "statcache")
    assert third.manifest(before.tree_hash) == dict(before.files)
    assert third.manifest(after.tree_hash) == dict(after.files)
    assert third.manifest("0" * 32) is None


def test_a_cache_of_the_wrong_shape_is_ignored(tmp_path: Path) -> None:
    import marshal

    root = _project(tmp_path / "p")
    hasher = HostHasher(root, tmp_path / "statcache")
    tree = hasher.hash_tree("data")
    hasher.save()
    (cache_file,) = (tmp_path / "statcache").glob("*.marshal")
    cache_file.write_bytes(fp_module._STATCACHE_MAGIC + marshal.dumps({"data": ("x", 1)}))
    assert HostHasher(root, tmp_path / "statcache").hash_tree("data") == tree


def test_adding_an_empty_directory_changes_the_tree_hash(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    hasher = HostHasher(root, tmp_path / "cache")
    before = hasher.hash_tree("data").tree_hash
    (root / "data" / "empty").mkdir()
    after = hasher.hash_tree("data")
    assert after.tree_hash != before
    assert after.files["data/empty"] == "d:"
    (root / "data" / "empty").rmdir()
    assert hasher.hash_tree("data").tree_hash == before
