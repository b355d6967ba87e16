"""Fixtures for CLI tests: a store seeded with runs (no Docker), and pipex() through typer's runner."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipex.cli.main import _register_commands, app, report_error
from pipex.errors import PipexError
from pipex.store import Store
from pipex.store.trees import EntryType, TreeEntry, encode_tree
from pipex.store.runs import RunMeta, RunStatus


@dataclass
class Result:
    """What a pipex command did, the way ``pipex.cli.main`` reports it."""

    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


def _invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    _register_commands()
    result = CliRunner().invoke(app, args, catch_exceptions=True)
    code, stderr = result.exit_code, result.stderr
    error = result.exception
    if isinstance(error, PipexError):
        report_error(error)  # the same one-line form as main()
        stderr += capsys.readouterr().err
        code = error.exit_code
    elif error is not None and not isinstance(error, SystemExit):
        raise error
    return Result(code, result.stdout, stderr, result.stdout_bytes)


@pytest.fixture
def pipex(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``pipex ARGS`` in-process; PipexError becomes its exit code and one stderr line, like main()."""

    def run(*args: str) -> Result:
        return _invoke(list(args), capsys)

    return run


class Seeder:
    """Writes workspaces, runs and refs into a store the way a build would (without Docker)."""

    def __init__(self, store: Store, tmp: Path, project: Path) -> None:
        self.store = store
        self.tmp = tmp
        self.project = project
        self.count = 0

    def output(self, files: dict[str, Any]) -> Path:
        """A directory with ``files``: name -> text, or ("link", target)."""
        self.count += 1
        root = self.tmp / f"out{self.count}"
        for name, value in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, tuple):
                os.symlink(value[1], path)
            else:
                path.write_text(value)
        root.mkdir(parents=True, exist_ok=True)
        return root

    def run(
        self,
        workspace: str,
        step: str,
        files: dict[str, Any] | None = None,
        *,
        status: str = "succeeded",
        stdout: str = "",
        stderr: str = "",
        finished_at: float | None = None,
        tree: str | None = None,
    ) -> str:
        """Record one run of ``step`` in ``workspace`` and point its ref at it; return the run id."""
        self.store.create_workspace(workspace, self.project)
        if tree is None:
            ingested = self.store.ingest(self.output(files or {}))
            tree, size, count = ingested.tree_id, ingested.bytes, ingested.files
        else:
            size, count = 0, 0
        self.count += 1
        logs = self.tmp / f"logs{self.count}"
        logs.mkdir(parents=True)
        (logs / "stdout.log").write_text(stdout)
        (logs / "stderr.log").write_text(stderr)
        finished = finished_at or time.time()
        run_id = f"{step}{self.count:04d}" + ("" if status == "succeeded" else f"-failed-{self.count}")
        meta = RunMeta(
            step=step,
            workspace=workspace,
            status=RunStatus(status),
            fingerprint=run_id,
            fingerprint_doc={"cmd": ["sh", "-c", "true"]},
            image_ref="pipex-test/busybox:1",
            image_id="sha256:abc",
            cmd=("sh", "-c", "true"),
            exit_code=0 if status == "succeeded" else 3,
            started_at=finished - 1.5,
            finished_at=finished,
            duration_ms=1500,
            attempts=1,
            output_tree=tree,
            bytes=size,
            files=count,
            pipex_version="test",
        )
        self.store.record_run(run_id, meta, logs)
        self.store.set_ref(workspace, step, run_id, kind="steps" if status == "succeeded" else "failed")
        return run_id

    def raw_tree(self, entries: list[TreeEntry]) -> str:
        """Write a tree manifest as given (as a damaged or hostile store might hold it); return its id."""
        tree_id, data = encode_tree(entries)
        path = self.store.tree_path(tree_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return tree_id


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A fresh store that every pipex command of the test uses (PIPEX_STORE); cwd is its project."""
    opened = Store.open(tmp_path / "store")
    monkeypatch.setenv("PIPEX_STORE", str(opened.root))
    monkeypatch.setenv("NO_COLOR", "1")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    yield opened


@pytest.fixture
def seed(store: Store, tmp_path: Path) -> Seeder:
    """Seeds ``store`` with runs."""
    return Seeder(store, tmp_path / "seed", tmp_path / "project")


LINK = EntryType.LINK
FILE = EntryType.FILE
__all__ = ["Result", "Seeder", "TreeEntry", "LINK", "FILE"]
