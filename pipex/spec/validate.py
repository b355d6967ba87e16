"""Run a JSON Schema over parsed data and turn every violation into a located, one-line SpecError."""

from __future__ import annotations

import difflib
import re
from typing import Any, Mapping, Sequence

from pipex.errors import SpecError, shorten
from pipex.spec.document import Document, PathPart

__all__ = ["schema_errors", "suggest"]

_JSON_TYPES = {
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def suggest(word: str, choices: Sequence[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return shorten(repr(value))
    if isinstance(value, (int, float)):
        return shorten(str(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _expected(types: Any) -> str:
    names = [_JSON_TYPES.get(name, name) for name in ([types] if isinstance(types, str) else types)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _custom(error: Any, keyword: str) -> str | None:
    """The schema's own wording for this keyword (``x-errors``), if it has one."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("x-errors", {})
    return custom.get(keyword) if isinstance(custom, Mapping) else None


def _format(error: Any, prefix: Sequence[PathPart], doc: Document) -> list[SpecError]:
    """Turn one jsonschema ValidationError into SpecErrors (one per unknown key)."""
    parts: list[PathPart] = [*prefix, *error.absolute_path]
    keyword = error.validator
    value = error.instance
    if keyword == "additionalProperties" and isinstance(value, Mapping):
        known = list(error.schema.get("properties", {}))
        allowed_extra = error.schema.get("patternProperties", {})
        out = []
        for key in value:
            if key in known or any(re.search(p, str(key)) for p in allowed_extra):
                continue
            msg = f"unknown field '{key}'{suggest(str(key), known)}"
            out.append(doc.error(msg, [*parts, key], key=True))
        if out:
            return out
    if keyword is None:  # a `false` subschema: the field is not allowed here
        return [doc.error("field not allowed here", parts, key=True)]
    custom = _custom(error, keyword)
    if "propertyNames" in error.relative_schema_path:
        # The offending key is the instance; point at it, not at the mapping.
        msg = (custom or "invalid key {value}").replace("{value}", _describe(value))
        return [doc.error(msg, [*parts, str(value)], key=True)]
    if keyword == "required":
        match = re.match(r"'(.*)' is a required property", error.message)
        missing = match.group(1) if match else str(error.validator_value)
        msg = (custom or "missing required field {missing}").replace("{missing}", f"'{missing}'")
        return [doc.error(msg, parts)]
    if custom:
        return [doc.error(custom.replace("{value}", _describe(value)), parts)]
    if keyword == "type":
        msg = f"expected {_expected(error.validator_value)}, got {_describe(value)}"
    elif keyword == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        msg = f"expected one of {options}, got {_describe(value)}"
    elif keyword == "const":
        msg = f"expected {error.validator_value!r}, got {_describe(value)}"
    elif keyword == "pattern":
        msg = f"invalid value {_describe(value)}: must match {error.validator_value}"
    elif keyword in ("minLength", "minItems", "minProperties"):
        msg = "must not be empty"
    elif keyword == "minimum":
        msg = f"must be at least {error.validator_value}, got {_describe(value)}"
    elif keyword == "exclusiveMinimum":
        msg = f"must be greater than {error.validator_value}, got {_describe(value)}"
    elif keyword == "maximum":
        msg = f"must be at most {error.validator_value}, got {_describe(value)}"
    elif keyword == "dependentRequired":
        match = re.match(r"'(.*)' is a dependency of '(.*)'", error.message)
        msg = f"'{match.group(2)}' needs '{match.group(1)}'" if match else error.message
    elif keyword in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        # Report from the branch the value's type fits (a mapping with a bad key: its unknown key,
        # not "expected a string"); only if none fits, the best match over all of them.
        fitting = [e for e in error.context if not _type_mismatch_at_root(e, error.context)]
        return _format(best_match(fitting or error.context), prefix, doc)
    else:
        msg = error.message
    return [doc.error(msg, parts)]


def _type_mismatch_at_root(error: Any, siblings: Any) -> bool:
    """True if ``error``'s oneOf branch rejected the value for its type (a branch for another kind of value)."""
    branch = error.schema_path[0] if error.schema_path else None
    return any(
        e.schema_path and e.schema_path[0] == branch and not e.relative_path and e.validator in ("type", "enum")
        for e in siblings
    )


def schema_errors(
    data: Any, schema: Mapping[str, Any], doc: Document, prefix: Sequence[PathPart] = ()
) -> list[SpecError]:
    """Validate ``data`` against ``schema``; return every violation as a located SpecError."""
    validator = _validator(schema)
    errors: list[SpecError] = []
    for error in validator.iter_errors(data):
        errors.extend(_format(error, prefix, doc))
    return errors


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    # Building a validator resolves refs; reuse it per schema object.
    from jsonschema import Draft202012Validator

    key = id(schema)
    cached = _VALIDATORS.get(key)
    if cached is None or cached[0] is not schema:
        cached = (schema, Draft202012Validator(_inline_refs(schema)))
        _VALIDATORS[key] = cached
    return cached[1]


def _inline_refs(schema: Mapping[str, Any]) -> Any:
    """Replace local ``#/$defs/...`` refs by their targets.

    # NOTE: resolving a ``$ref`` through `referencing` on every instance was
    # about a third of validation time for large pipelines; our schemas are
    # not recursive, so inlining them once is exact.
    """
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[ref[8:]], **rest})
        return {k: (v if k == "$defs" else walk(v)) for k, v in node.items()}

    return walk(schema)
