"""Shell completion of workspace and step names."""

from __future__ import annotations

from types import SimpleNamespace

from pipex.cli._common import complete_step, complete_workspace


def test_workspaces_and_steps_complete_from_the_store(seed, store) -> None:
    seed.run("demo", "fetch", {"a": "1"})
    seed.run("demo", "filter", {}, status="failed")
    seed.run("dev", "x", {"a": "1"})
    ctx = SimpleNamespace(params={"store": None, "workspace": "demo"})
    assert complete_workspace(ctx, "de") == ["demo", "dev"]
    assert complete_workspace(ctx, "dem") == ["demo"]
    assert complete_step(ctx, "f") == ["fetch", "filter"]
    assert complete_step(SimpleNamespace(params={"workspace": "nope"}), "") == []


def test_completion_never_raises(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PIPEX_STORE", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a store")
    assert complete_workspace(SimpleNamespace(params={}), "") == []
