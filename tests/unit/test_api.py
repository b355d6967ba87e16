"""pipex.api checks that need no daemon: workspace ownership and names, force lists, concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipex import api
from pipex.errors import UsageError
from pipex.engine.results import StepOutcome
from pipex.store import Store

# Every step is skipped by its condition, so a build needs no Docker at all.
SKIPPED_ONLY = """\
id: demo
steps:
  - {id: gated, image: img:1, cmd: "true", if: env.PIPEX_TEST_UNSET_VARIABLE}
"""


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pipeline.yaml").write_text(SKIPPED_ONLY)
    return root


def test_workspace_of_another_project_is_refused_with_a_hint(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    store.create_workspace("demo", (tmp_path / "elsewhere").resolve())
    project = _project(tmp_path / "here")
    with pytest.raises(UsageError, match="pass --workspace demo to adopt it"):
        api.build(project, store=tmp_path / "store")


def test_explicit_workspace_adopts_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    store.create_workspace("demo", (tmp_path / "elsewhere").resolve())
    project = _project(tmp_path / "here")
    result = api.build(project, store=tmp_path / "store", workspace="demo")
    assert [r.outcome for r in result.results] == [StepOutcome.SKIPPED]
    assert Path(Store.open(tmp_path / "store").workspace_project_root("demo")) == project.resolve()


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", ""])
def test_bad_workspace_names_are_usage_errors(tmp_path: Path, name: str) -> None:
    project = _project(tmp_path / "p")
    with pytest.raises(UsageError, match="invalid workspace name"):
        api.build(project, store=tmp_path / "store", workspace=name or " ")


def test_force_names_must_match_steps(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    with pytest.raises(UsageError, match="gatd"):
        api.build(project, store=tmp_path / "store", force="gatd")
    result = api.build(project, store=tmp_path / "store", force="gat*")
    assert result.ok


def test_concurrency_below_one_is_a_usage_error(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    with pytest.raises(UsageError, match="concurrency must be at least 1"):
        api.build(project, store=tmp_path / "store", concurrency=-1)
