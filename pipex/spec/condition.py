"""The ``if:`` expression language: parsed into a small whitelisted AST, never ``eval``-ed.

What ``env`` is: the mapping the planner passes to :meth:`Condition.evaluate` —
the host process environment overlaid with the ``--env-file`` values (not the
step's own ``env``, which is fixed in the file and would make conditions
pointless). Accepted, as in the original pipex:

    env.NODE_ENV == "production"       env.CI            !env.SKIP_DOCS
    env.A && (env.B || env["C-D"])     not env.X or y    env.N != 3
    true / false / null, strings in '...' or "...", numbers, < <= > >=

An unset variable is ``None``. Truthiness: ``None``, ``""``, ``"0"``,
``"false"``, ``"no"``, ``"off"`` (any case) are false, every other string is
true — so ``CI=false`` does what a user means. ``==`` between a string and a
number compares numerically when the string is a number (``env.N == 3``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from pipex.errors import SpecError, shorten

__all__ = ["Condition", "parse_condition", "truthy"]

_MAX_LENGTH = 2000  # a condition is one line a person wrote
_FALSY = frozenset({"", "0", "false", "no", "off"})

# Tokens of the source language; strings are kept whole so operators inside
# them are never rewritten.
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<op>&&|\|\||==|!=|<=|>=|!|<|>|\(|\)|\[|\]|\.)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_WORDS = {"true": "True", "false": "False", "null": "None", "and": "and", "or": "or", "not": "not"}
_OPS = {"&&": " and ", "||": " or ", "!": " not "}

Evaluator = Callable[[Mapping[str, str]], Any]


def truthy(value: Any) -> bool:
    """Truthiness of a condition value (see the module docstring)."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY
    return bool(value)


@dataclass(frozen=True)
class Condition:
    """A parsed ``if:`` expression; evaluate it against the condition environment."""

    text: str
    _evaluate: Evaluator

    def evaluate(self, env: Mapping[str, str]) -> bool:
        """Return whether the condition holds for ``env`` (host env + ``--env-file``)."""
        return truthy(self._evaluate(env))


@lru_cache(maxsize=1024)
def parse_condition(text: str) -> Condition:
    """Parse ``text``; raise SpecError (message only, no location) when it is not valid."""
    if len(text) > _MAX_LENGTH:
        raise _bad(text, f"longer than {_MAX_LENGTH} characters")
    source = _translate(text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
        return Condition(text, _compile(tree.body, text))
    except SyntaxError:
        raise _bad(text, "syntax error") from None
    except (RecursionError, MemoryError):
        # Python's parser and our compiler recurse per nesting level.
        raise _bad(text, "nested too deeply") from None


def _translate(text: str) -> str:
    """Rewrite JS-style operators and words into Python syntax, token by token."""
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            column = len(text) - len(text[pos:].lstrip()) + 1
            raise _bad(text, f"unexpected {text[pos:].strip()[:1]!r} at column {column}")
        pos = match.end()
        kind = match.lastgroup
        token = match.group(kind)  # type: ignore[arg-type]
        if kind == "op":
            out.append(_OPS.get(token, token))
        elif kind == "name":
            out.append(f" {_WORDS.get(token, token)} ")
        else:
            out.append(token)
    return "".join(out)


def _bad(text: str, what: str) -> SpecError:
    return SpecError(f"invalid condition {shorten(repr(text))}: {what}")


def _compile(node: ast.AST, text: str) -> Evaluator:
    """Turn a whitelisted AST node into a closure; anything else is an error."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        value = node.value
        return lambda env: value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "env":
        name = node.attr
        return lambda env: env.get(name)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "env"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        key = node.slice.value
        return lambda env: env.get(key)
    if isinstance(node, ast.Name):
        raise _bad(text, f"unknown name {node.id!r} (variables are read as env.NAME)")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _compile(node.operand, text)
        return lambda env: not truthy(operand(env))
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, text) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(truthy(part(env)) for part in parts)
        return lambda env: any(truthy(part(env)) for part in parts)
    if isinstance(node, ast.Compare):
        return _compile_compare(node, text)
    raise _bad(text, "only env.NAME, literals, ==, !=, <, >, !, &&, || and parentheses are allowed")


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


def _compile_compare(node: ast.Compare, text: str) -> Evaluator:
    operands = [_compile(node.left, text), *(_compile(c, text) for c in node.comparators)]
    ops = []
    for op in node.ops:
        func = _COMPARE.get(type(op))
        if func is None:
            raise _bad(text, "unsupported comparison")
        ops.append((func, isinstance(op, (ast.Eq, ast.NotEq))))

    def evaluate(env: Mapping[str, str]) -> bool:
        left = operands[0](env)
        for (func, equality), right_of in zip(ops, operands[1:]):
            right = right_of(env)
            a, b = _coerce(left, right)
            try:
                if not func(a, b):
                    return False
            except TypeError:
                # Ordering across types (None < "x") is simply false, not a crash.
                if not equality:
                    return False
            left = right
        return True

    return evaluate


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """Compare a numeric string with a number numerically; booleans with "true"/"false"."""
    if isinstance(a, str) and isinstance(b, (int, float)) and not isinstance(b, bool):
        try:
            return float(a), b
        except ValueError:
            return a, b
    if isinstance(b, str) and isinstance(a, (int, float)) and not isinstance(a, bool):
        b2, a2 = _coerce(b, a)
        return a2, b2
    if isinstance(a, str) and isinstance(b, bool):
        return truthy(a), b
    if isinstance(b, str) and isinstance(a, bool):
        return a, truthy(b)
    return a, b
