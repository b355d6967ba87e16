"""RunMeta, the one owner of meta.json: its format, older runs, newer runs, damaged ones, the run-id rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipex.errors import StoreCorruptError
from pipex.store import Store
from pipex.store.runs import META_FORMAT, RunMeta, RunStatus, run_id_for

# A run recorded by pipex before meta.json carried a format: every key it wrote.
FORMAT_1 = {
    "step": "fetch", "workspace": "demo", "status": "succeeded", "fingerprint": "f" * 32,
    "fingerprint_doc": {"format": 2, "cmd": ["true"]}, "image_ref": "busybox:1", "image_id": "sha256:abc",
    "cmd": ["sh", "-e", "-c", "true"], "setup_cmd": None, "exit_code": 0, "timed_out": False, "message": None,
    "started_at": 100.0, "finished_at": 101.5, "duration_ms": 1500, "attempts": 1, "retries": 0,
    "output_tree": None, "bytes": 3, "files": 1, "pipex_version": "0.9.0",
}


def test_a_format_1_run_reads_with_every_field() -> None:
    meta = RunMeta.from_dict(FORMAT_1)
    assert meta.format == 1 and meta.succeeded and meta.step == "fetch" and meta.cmd == ("sh", "-e", "-c", "true")
    assert (meta.finished_at, meta.duration_ms, meta.files, meta.fingerprint_doc) == (101.5, 1500, 1, {"format": 2, "cmd": ["true"]})


def test_written_meta_is_the_documented_format_and_round_trips() -> None:
    doc = RunMeta.from_dict(FORMAT_1).to_dict()
    assert doc == {**FORMAT_1, "format": META_FORMAT, "pulled_from": None, "pushed_at": None, "worker": None}
    assert RunMeta.from_dict(doc) == RunMeta.from_dict(FORMAT_1)


def test_a_newer_pipex_keys_are_kept_through_a_rewrite() -> None:
    newer = {**FORMAT_1, "format": META_FORMAT + 1, "remote": {"pushedAt": 5}}
    meta = RunMeta.from_dict(newer)
    assert meta.extra == {"remote": {"pushedAt": 5}}
    assert meta.to_dict()["remote"] == {"pushedAt": 5}


def test_missing_and_mistyped_keys_get_defaults_instead_of_failing_a_reader() -> None:
    meta = RunMeta.from_dict({"status": "weird", "cmd": "not a list", "bytes": "many", "finished_at": True})
    assert meta.status is RunStatus.FAILED  # an unknown status is never taken for a success
    assert (meta.cmd, meta.bytes, meta.finished_at, meta.attempts) == ((), 0, None, 0)


def test_an_output_tree_that_is_not_a_string_is_damage() -> None:
    with pytest.raises(StoreCorruptError, match="output_tree is not a string"):
        RunMeta.from_dict({"output_tree": 7}, "r1")


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)), max_size=8))
def test_any_json_object_reads_without_an_exception_but_damage(doc: dict[str, object]) -> None:
    try:
        meta = RunMeta.from_dict(doc)
    except StoreCorruptError:
        assert not isinstance(doc.get("output_tree"), (str, type(None)))
        return
    json.dumps(meta.to_dict())  # and it can always be written back


def test_the_store_reads_back_what_it_wrote(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    record = store.record_run("r1", RunMeta.from_dict(FORMAT_1), None)
    assert record.meta == RunMeta.from_dict(FORMAT_1) and record.meta.format == META_FORMAT
    assert json.loads((record.path / "meta.json").read_text())["format"] == META_FORMAT


def test_the_run_id_rule() -> None:
    assert run_id_for("f" * 32, RunStatus.SUCCEEDED, 1.5) == "f" * 32
    assert run_id_for("f" * 32, RunStatus.FAILED, 1.5) == "f" * 32 + "-failed-1500"
    assert run_id_for("f" * 32, RunStatus.SUCCEEDED, 1.5, unstable=True) == "f" * 32 + "-unstable-1500"
