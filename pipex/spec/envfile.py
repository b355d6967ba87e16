"""Parse dotenv files: ``KEY=value`` lines, comments, quotes, an optional ``export`` prefix."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pipex.errors import SpecError
from pipex.spec.files import read_input_file

__all__ = ["merge_env_files", "parse_env_file", "parse_env_text"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "'": "'"}


def parse_env_file(path: Path, *, shown: str | None = None) -> dict[str, str]:
    """Read a dotenv file; every bad line is a SpecError naming ``FILE:LINE``.

    Syntax: blank lines and ``#`` comments are skipped; ``export KEY=value``
    equals ``KEY=value``; ``KEY=`` is the empty string; single quotes are
    literal; double quotes understand ``\\n \\t \\r \\" \\\\ \\$`` and may span
    lines; an unquoted value ends at `` #`` and is stripped. No ``${VAR}``
    expansion: what the file says is what the step gets.
    """
    file = shown or str(path)
    try:
        text = read_input_file(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        msg = "env file is not valid UTF-8"
        raise SpecError(msg, file=file) from None
    except OSError as error:
        msg = f"cannot read env file: {error.strerror or error}"
        raise SpecError(msg, file=file) from None
    return parse_env_text(text, file=file)


def merge_env_files(env_files: Iterable[Path | str]) -> dict[str, str]:
    """Merge ``--env-file`` files in order (a later file wins); errors name FILE:LINE. The one merge rule."""
    env: dict[str, str] = {}
    for name in env_files:
        env.update(parse_env_file(Path(name), shown=str(name)))
    return env


def parse_env_text(text: str, *, file: str = "<env>") -> dict[str, str]:
    """Parse dotenv text (see :func:`parse_env_file`)."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        raw = lines[index]
        index += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        match = _KEY.match(line)
        if not match:
            msg = f"expected KEY=VALUE, got {raw.strip()!r}"
            raise SpecError(msg, file=file, line=number, column=raw.index(line[:1]) + 1 if line else 1)
        key = match.group(0)
        rest = line[match.end() :].lstrip()
        if not rest.startswith("="):
            msg = f"expected KEY=VALUE, got {raw.strip()!r}"
            raise SpecError(msg, file=file, line=number, column=1)
        rest = rest[1:].lstrip()
        if rest.startswith('"'):
            value, rest, index = _double_quoted(rest[1:], lines, index, file, number)
        elif rest.startswith("'"):
            end = rest.find("'", 1)
            if end < 0:
                msg = f"unterminated single quote in value of {key!r}"
                raise SpecError(msg, file=file, line=number)
            value, rest = rest[1:end], rest[end + 1 :]
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
            rest = ""
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            msg = f"unexpected text after the value of {key!r}: {rest!r}"
            raise SpecError(msg, file=file, line=number)
        values[key] = value
    return values


def _double_quoted(
    text: str, lines: list[str], index: int, file: str, number: int
) -> tuple[str, str, int]:
    """Read a double-quoted value that may continue on the next lines."""
    out: list[str] = []
    while True:
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
                continue
            if char == '"':
                return "".join(out), text[i + 1 :], index
            out.append(char)
            i += 1
        if index >= len(lines):
            msg = "unterminated double quote"
            raise SpecError(msg, file=file, line=number)
        out.append("\n")
        text = lines[index]
        index += 1
