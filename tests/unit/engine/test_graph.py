"""The DAG: leaves, target selection, stable topological order, mermaid/dot/text rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from plan_helpers import pipeline, step
from pipex.errors import UsageError
from pipex.engine.graph import leaves, render, resolve_names, select, topo_order


def _pipe(tmp_path: Path):
    # File order deliberately differs from dependency order.
    return pipeline(
        tmp_path,
        step("report", "stats", optional=("lint",)),
        step("stats", "fetch"),
        step("lint"),
        step("fetch"),
        step("docs"),
    )


def test_leaves_in_file_order(tmp_path: Path) -> None:
    assert leaves(_pipe(tmp_path)) == ("report", "docs")


def test_topo_order_is_stable_file_order_among_ready_steps(tmp_path: Path) -> None:
    assert topo_order(_pipe(tmp_path)) == ["lint", "fetch", "stats", "report", "docs"]


def test_select_adds_transitive_inputs(tmp_path: Path) -> None:
    targets, selected = select(_pipe(tmp_path), ["stats"])
    assert targets == ("stats",)
    assert selected == {"stats", "fetch"}
    _, everything = select(_pipe(tmp_path))
    assert everything == {"report", "stats", "lint", "fetch", "docs"}


def test_resolve_names_expands_globs_once_in_file_order(tmp_path: Path) -> None:
    assert resolve_names(_pipe(tmp_path), ["*s", "stats", "d?cs"]) == ("stats", "docs")


def test_unknown_name_suggests_close_ids(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="did you mean 'stats'"):
        resolve_names(_pipe(tmp_path), ["stat"])


def test_cycle_is_reported(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path, step("a", "b"), step("b", "a"))
    with pytest.raises(ValueError, match="cycle"):
        topo_order(pipe)


def test_mermaid_styles_steps_by_status(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    text = render(pipe, topo_order(pipe), {"fetch": "cached", "stats": "run"}, fmt="mermaid")
    assert text.startswith("flowchart LR\n")
    assert '  s_fetch["fetch"]:::cached' in text
    assert "  s_fetch --> s_stats" in text
    assert "  s_lint -.-> s_report" in text
    assert "classDef cached" in text and "classDef run" in text


def test_dot_fills_steps_by_status(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    text = render(pipe, topo_order(pipe), {"fetch": "cached", "stats": "run"}, fmt="dot")
    assert text.startswith('digraph "demo" {')
    assert '"fetch" [label="fetch", fillcolor="#c8e6c9"' in text
    assert '"stats" [label="stats", fillcolor="#ffcdd2"' in text
    assert '"fetch" -> "stats";' in text
    assert '"lint" -> "report" [style=dashed];' in text


def test_text_lists_inputs(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    text = render(pipe, ["fetch", "stats"], {"stats": "run"}, fmt="text")
    assert text == "fetch\n[run] stats <- fetch\n"


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown graph format"):
        render(_pipe(tmp_path), [], fmt="svg")
