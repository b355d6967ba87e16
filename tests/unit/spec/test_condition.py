"""The if: evaluator: the original pipex expressions, truthiness, and what it refuses."""

from __future__ import annotations

import pytest

from pipex.errors import SpecError
from pipex.spec.condition import parse_condition, truthy

ENV = {"NODE_ENV": "production", "CI": "true", "N": "3", "OFF": "false", "EMPTY": "", "DASHED-NAME": "x"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('env.NODE_ENV == "production"', True),
        ("env.NODE_ENV == 'staging'", False),
        ('env.NODE_ENV != "production"', False),
        ("env.CI", True),
        ("env.MISSING", False),
        ("!env.MISSING", True),
        ("not env.CI", False),
        ("env.OFF", False),
        ("env.EMPTY", False),
        ("env.CI && env.N == 3", True),
        ("env.CI and env.MISSING", False),
        ("env.MISSING || env.CI", True),
        ("env.MISSING or env.OFF", False),
        ("!(env.CI && env.OFF)", True),
        ("env.N > 2 && env.N <= 3", True),
        ("env.MISSING < 2", False),
        ("env.MISSING == null", True),
        ('env["DASHED-NAME"] == "x"', True),
        ("env.CI == true", True),
        ("true", True),
        ("false", False),
        ("1", True),
        ("'a && b' == \"a && b\"", True),
    ],
)
def test_condition_evaluates(text: str, expected: bool) -> None:
    assert parse_condition(text).evaluate(ENV) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("env.A ==", "invalid condition 'env.A ==': syntax error"),
        ("(env.A", "invalid condition '(env.A': syntax error"),
        ("", "invalid condition '': syntax error"),
        ("x", "invalid condition 'x': unknown name 'x' (variables are read as env.NAME)"),
        ("env.A + 1", "invalid condition 'env.A + 1': unexpected '+' at column 7"),
        ('__import__("os")', "invalid condition '__import__(\"os\")': only env.NAME, literals, ==, !=, <, >, !, &&, || and parentheses are allowed"),
        ("env.A.b", "invalid condition 'env.A.b': only env.NAME, literals, ==, !=, <, >, !, &&, || and parentheses are allowed"),
        ("env.__class__ if 1 else 2", "invalid condition 'env.__class__ if 1 else 2': only env.NAME, literals, ==, !=, <, >, !, &&, || and parentheses are allowed"),
        ("env.A = 1", "invalid condition 'env.A = 1': unexpected '=' at column 7"),
    ],
)
def test_bad_condition_is_a_spec_error(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_condition(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("0", False), ("No", False), ("off", False), ("1", True), ("yes", True), ("anything", True)])
def test_truthiness_of_env_values(value: str | None, expected: bool) -> None:
    assert truthy(value) is expected


def test_condition_is_parsed_once_and_reused() -> None:
    assert parse_condition("env.CI") is parse_condition("env.CI")
