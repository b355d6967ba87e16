"""Parse a YAML or JSON file into plain data, keeping a node tree to locate errors by JSON path."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipex.errors import SpecError, SpecErrors
from pipex.spec.files import read_input_file

__all__ = ["Document", "parse_document", "format_path", "display_path"]

PathPart = str | int


def format_path(parts: Sequence[PathPart]) -> str:
    """Render a JSON path as ``steps[2].inputs[0].step``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


def display_path(path: Path) -> str:
    """Name a file the way errors show it: relative to the cwd when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


@dataclass
class Document:
    """Parsed file content plus what is needed to point at a place in it.

    ``node`` is the YAML node tree (None for JSON until an error needs it): we
    locate errors lazily by walking it, so a valid file never pays for marks.
    """

    data: Any
    file: str
    text: str
    node: Any = None
    _node_ready: bool = field(default=False, repr=False)

    def _root(self) -> Any:
        if not self._node_ready:
            self._node_ready = True
            if self.node is None:
                # JSON is (nearly) YAML: compose it only to learn positions.
                try:
                    import yaml

                    self.node = yaml.compose(self.text, Loader=_loader_class())
                except Exception:  # positions are a nicety; never fail on them
                    self.node = None
        return self.node

    def locate(self, parts: Sequence[PathPart], *, key: bool = False) -> tuple[int | None, int | None]:
        """Return (line, column), 1-based, of the value at ``parts``.

        With ``key=True`` and a mapping entry, point at the key instead. When the
        path goes deeper than the file (a default value), the deepest known node
        is used.
        """
        import yaml

        node = self._root()
        if node is None:
            return None, None
        mark = node.start_mark
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                        node = value_node
                        mark = key_node.start_mark if (last and key) else value_node.start_mark
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                mark = node.start_mark
            else:
                break
        return mark.line + 1, mark.column + 1

    def error(self, message: str, parts: Sequence[PathPart] = (), *, key: bool = False) -> SpecError:
        """Build a SpecError located at ``parts`` in this document."""
        line, column = self.locate(parts, key=key)
        return SpecError(message, file=self.file, line=line, column=column, path=format_path(parts) or None)


def _loader_class() -> type:
    """A safe loader (C when available) whose mapping keys are always the key's text.

    YAML 1.1 turns keys such as ``on`` or ``1`` into booleans or ints; in env
    maps and step fields the user always means the text. Duplicate keys are
    errors rather than silently last-one-wins.
    """
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc, valid-type]
        duplicate_keys: list[Any]

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if not isinstance(node, yaml.MappingNode):
                return super().construct_mapping(node, deep=deep)
            # Only keys written in this mapping can clash; keys merged in with
            # `<<: *anchor` are defaults the mapping's own keys override.
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    if key_node.value in seen:
                        self.duplicate_keys.append(key_node)
                    seen.add(key_node.value)
            self.flatten_mapping(node)
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                else:
                    key = self.construct_object(key_node, deep=deep)
                    if not isinstance(key, (str, int, float, bool)) and key is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None, "found a mapping or list used as a key", key_node.start_mark
                        )
                mapping[key] = self.construct_object(value_node, deep=deep)
            return mapping

    resolve = _Loader.resolve
    memo: dict[tuple[Any, str, Any], str] = {}

    def fast_resolve(self: Any, kind: Any, value: Any, implicit: Any) -> str:
        # The composer resolves every scalar's tag by trying regexes; pipelines
        # repeat the same scalars (keys, images) thousands of times.
        if kind is yaml.ScalarNode and isinstance(value, str) and len(value) < 64:
            key = (implicit, value, None)
            tag = memo.get(key)
            if tag is None:
                tag = memo[key] = resolve(self, kind, value, implicit)
            return tag
        return resolve(self, kind, value, implicit)

    _Loader.resolve = fast_resolve
    _Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
    _LOADER = _Loader
    return _Loader


_LOADER: type | None = None
_MERGE = "tag:yaml.org,2002:merge"


def parse_document(path: Path, *, shown: str | None = None, data: bytes | None = None) -> Document:
    """Read and parse ``path`` (YAML, or JSON for ``.json``) into a Document.

    Every failure (unreadable file, bad UTF-8, syntax error, empty document)
    is a SpecError naming the file and, where known, the line and column.
    """
    file = shown or display_path(path)
    if data is None:
        try:
            data = read_input_file(path)
        except IsADirectoryError:
            msg = "is a directory, not a file"
            raise SpecError(msg, file=file) from None
        except OSError as error:
            msg = f"cannot read file: {error.strerror or error}"
            raise SpecError(msg, file=file) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        msg = "file is not valid UTF-8"
        raise SpecError(msg, file=file, line=line, column=column) from None
    if not text.strip():
        msg = "file is empty"
        raise SpecError(msg, file=file)
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            msg = f"invalid JSON: {error.msg}"
            raise SpecError(msg, file=file, line=error.lineno, column=error.colno) from None
        except RecursionError:
            raise SpecError(_TOO_DEEP, file=file) from None
        except ValueError as error:  # an integer of more than 4,300 digits
            raise SpecError(f"invalid JSON: {_number_error(error)}", file=file) from None
        _check_data_depth(value, file)
        return Document(data=value, file=file, text=text)
    return _parse_yaml(text, file)


#: How deep a pipeline file may nest, and how many values its aliases may expand to.
#: Real pipelines nest < 20 levels; an alias bomb ("billion laughs") expands to 10^9.
MAX_DEPTH = 100
MAX_EXPANDED_NODES = 1_000_000
_TOO_DEEP = f"the document nests more than {MAX_DEPTH} levels deep"
# A YAML anchor: `&name` after a space, a flow indicator or the line start (`&&` in a command is not one).
_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s&]", re.MULTILINE)


def _number_error(error: ValueError) -> str:
    text = str(error)
    return "a number has more than 4300 digits" if "digits" in text else text


def _check_data_depth(value: Any, file: str) -> None:
    """Refuse parsed data nesting deeper than MAX_DEPTH (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecError(_TOO_DEEP, file=file)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _check_node_shape(root: Any, file: str) -> None:
    """Refuse a YAML node graph that nests too deep, loops, or whose aliases expand too far.

    Iterative post-order walk, each node once (aliases share nodes); a node's
    expanded size is 1 + its children's, so a bomb is caught before anything
    is constructed.
    """
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            children = _children(node, yaml)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_EXPANDED_NODES:
                msg = f"aliases expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?)"
                raise SpecError(msg, file=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            msg = "an alias refers to a node that contains it (a recursive structure)"
            raise SpecError(msg, file=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
        if len(on_path) >= MAX_DEPTH:
            raise SpecError(_TOO_DEEP, file=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node, yaml))


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _parse_yaml(text: str, file: str) -> Document:
    import yaml

    loader = _loader_class()(text)
    loader.duplicate_keys = []
    try:
        node = loader.get_single_node()
        if node is not None and _ANCHOR.search(text):
            # Only a document with anchors can expand (or loop); the walk costs
            # ~10 % of a cold load, so plain documents skip it. Their depth is
            # bounded by libyaml (1,000) and the RecursionError guard below.
            _check_node_shape(node, file)
        value = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise SpecError(_TOO_DEEP, file=file) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        msg = f"invalid YAML: {problem}"
        if mark is None:
            raise SpecError(msg, file=file) from None
        raise SpecError(msg, file=file, line=mark.line + 1, column=mark.column + 1) from None
    except yaml.YAMLError as error:
        msg = f"invalid YAML: {error}"
        raise SpecError(msg, file=file) from None
    except ValueError as error:  # an integer of more than 4,300 digits
        raise SpecError(f"invalid YAML: {_number_error(error)}", file=file) from None
    finally:
        loader.dispose()
    if node is None:
        msg = "file is empty"
        raise SpecError(msg, file=file)
    doc = Document(data=value, file=file, text=text, node=node, _node_ready=True)
    if loader.duplicate_keys:
        errors = []
        for key_node in loader.duplicate_keys:
            msg = f"duplicate key '{key_node.value}'"
            errors.append(
                SpecError(msg, file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1)
            )
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    return doc
