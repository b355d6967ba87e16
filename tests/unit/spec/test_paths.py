"""The batch host-path re-check of a validated-pipeline cache hit agrees with the full check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipex.spec.paths import check_host_path, host_paths_ok


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data" / "a").mkdir(parents=True)
    (project / "data" / "b.txt").write_text("b")
    (project / "top.txt").write_text("t")
    (tmp_path / "outside").mkdir()
    return project.resolve()


def test_existing_paths_inside_the_root_pass(root: Path) -> None:
    assert host_paths_ok({"data/a", "data/b.txt", "top.txt", "data"}, root)


def test_a_vanished_path_fails(root: Path) -> None:
    (root / "data" / "b.txt").unlink()
    assert not host_paths_ok({"data/a", "data/b.txt"}, root)


@pytest.mark.parametrize("where", ["data/link", "link"])
def test_a_symlink_now_leaving_the_root_fails_like_the_full_check(root: Path, where: str) -> None:
    os.symlink(root.parent / "outside", root / where)
    assert not host_paths_ok({where}, root)
    assert check_host_path(where, root)[1] is not None


def test_a_parent_directory_replaced_by_a_link_outside_fails(root: Path) -> None:
    (root / "data" / "b.txt").unlink()
    (root / "data" / "a").rmdir()
    (root / "data").rmdir()
    outside = root.parent / "outside"
    (outside / "a").mkdir()
    os.symlink(outside, root / "data")
    assert not host_paths_ok({"data/a"}, root)


def test_a_symlink_inside_the_root_passes(root: Path) -> None:
    os.symlink(root / "data" / "a", root / "alias")
    assert host_paths_ok({"alias"}, root)
    assert check_host_path("alias", root)[1] is None


def test_a_dangling_symlink_fails(root: Path) -> None:
    os.symlink(root / "nowhere", root / "dangling")
    assert not host_paths_ok({"dangling"}, root)
