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


def test_bash_completion_through_the_real_entry_point(seed, store) -> None:
    import os
    import subprocess
    import sys

    seed.run("demo", "fetch", {"a": "1"})
    seed.run("demo", "filter", {"a": "2"})

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_PIPEX_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        code = "import sys; sys.argv[0] = 'pipex'; from pipex.cli.main import main; main()"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        return done.stdout.split()

    assert complete("pipex show de", 2) == ["demo"]
    assert complete("pipex logs demo fi", 3) == ["filter"]
    assert complete("pipex cat demo f", 3) == ["fetch", "filter"]
