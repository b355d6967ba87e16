"""The dotenv parser: what each line form means, and where bad lines are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipex.errors import SpecError
from pipex.spec.envfile import parse_env_file, parse_env_text


def test_comments_blank_lines_export_and_empty_values() -> None:
    text = "# a comment\n\nexport A=1\nB=\n  C = spaced  \nD=x # trailing comment\nE=a#b\n"
    assert parse_env_text(text) == {"A": "1", "B": "", "C": "spaced", "D": "x", "E": "a#b"}


def test_single_quotes_are_literal() -> None:
    assert parse_env_text(r"A='x\n $HOME # y'") == {"A": r"x\n $HOME # y"}


def test_double_quotes_understand_escapes() -> None:
    assert parse_env_text(r'A="l1\nl2\t\"q\" \\ \$"') == {"A": 'l1\nl2\t"q" \\ $'}


def test_double_quoted_value_may_span_lines() -> None:
    assert parse_env_text('KEY="-----BEGIN\nbody\n-----END"\nNEXT=1\n') == {
        "KEY": "-----BEGIN\nbody\n-----END",
        "NEXT": "1",
    }


def test_later_assignment_wins() -> None:
    assert parse_env_text("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\n=2\n", "f.env:2:1: expected KEY=VALUE, got '=2'"),
        ("A=1\nB\n", "f.env:2:1: expected KEY=VALUE, got 'B'"),
        ("A='open\n", "f.env:1: unterminated single quote in value of 'A'"),
        ('A="open\n', "f.env:1: unterminated double quote"),
        ('A="x" y\n', "f.env:1: unexpected text after the value of 'A': 'y'"),
        ("1A=x\n", "f.env:1:1: expected KEY=VALUE, got '1A=x'"),
    ],
)
def test_bad_lines_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_env_text(text, file="f.env")
    assert str(info.value) == message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read env file"):
        parse_env_file(tmp_path / "missing.env", shown="missing.env")
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"A=\xff\n")
    with pytest.raises(SpecError) as info:
        parse_env_file(bad, shown="bad.env")
    assert str(info.value) == "bad.env: env file is not valid UTF-8"
