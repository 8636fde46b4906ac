"""YAML parsing that remembers where every value came from.

Mappings load as `MarkedDict` and sequences as `MarkedList`: plain `dict`/`list` subclasses that
also hold the 1-based (line, column) of the container and of each key and value, so a
validation error can point at the offending node. `plain()` strips them again.

Scalars are resolved like Kestra's YAML reader (Jackson) rather than YAML 1.1: only
`true`/`false` are booleans (`yes`, `on` stay strings), `18:27:49` stays a string instead of a
sexagesimal number, `010` is ten, and timestamps stay strings. Mapping keys are always strings.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from flows.errors import Violation

Mark = tuple[int, int]  # 1-based (line, column)

_NO_MARK: Mark = (0, 0)


class MarkedDict(dict[str, Any]):
    """A mapping that knows the position of itself, its keys and its values."""

    mark: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mark = _NO_MARK
        self.key_marks = {}
        self.value_marks = {}

    def mark_of(self, key: str) -> Mark:
        """Position of the value at `key`, else of the key, else of the mapping itself."""
        return self.value_marks.get(key) or self.key_marks.get(key) or self.mark

    def key_mark_of(self, key: str) -> Mark:
        return self.key_marks.get(key) or self.mark


class MarkedList(list[Any]):
    """A sequence that knows the position of itself and of each item."""

    mark: Mark
    item_marks: list[Mark]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.mark = _NO_MARK
        self.item_marks = []

    def mark_of(self, index: int) -> Mark:
        return self.item_marks[index] if 0 <= index < len(self.item_marks) else self.mark


def mark_of(container: Any, key: Any) -> Mark | None:
    """Position of `container[key]` when the container was loaded by this module."""
    if isinstance(container, MarkedDict) and isinstance(key, str):
        return container.mark_of(key)
    if isinstance(container, MarkedList) and isinstance(key, int):
        return container.mark_of(key)
    if isinstance(container, MarkedDict | MarkedList):
        return container.mark
    return None


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style scalars and marked containers."""


# Start from SafeLoader's resolvers minus bool/int/float/timestamp, then add YAML 1.2 core ones.
_REPLACED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith("inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.endswith("nan"):
        return float("nan")
    return float(text)


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, str | int | float):
        return str(key)
    raise TypeError(type(key).__name__)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = MarkedDict()
    data.mark = _mark(node)
    yield data
    loader.flatten_mapping(node)  # resolves `<<` merge keys
    for key_node, value_node in node.value:
        raw_key = loader.construct_object(key_node, deep=True)
        try:
            key = _key_text(raw_key)
        except TypeError as error:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found a non-scalar key", key_node.start_mark
            ) from error
        # A repeated key keeps the last value, as Kestra's reader does.
        value = loader.construct_object(value_node, deep=True)
        data[key] = value
        data.key_marks[key] = _mark(key_node)
        # A missing value (`key:`) is reported at its key.
        data.value_marks[key] = _mark(key_node) if value is None else _mark(value_node)


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Any:
    data = MarkedList()
    data.mark = _mark(node)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_marks.append(_mark(item))


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_marked(source: str) -> Any:
    """Parse one YAML document into marked containers; raises `yaml.YAMLError` on bad syntax."""
    return yaml.load(source, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def load_plain(source: str) -> Any:
    """Parse one YAML document with the same scalar rules, into plain dicts and lists."""
    return plain(load_marked(source))


def plain(value: Any) -> Any:
    """A deep copy of `value` with marked containers turned into plain `dict` and `list`."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def join_path(path: str, key: str) -> str:
    """`triggers[0]` + `cron` -> `triggers[0].cron`; the top level has no prefix."""
    return f"{path}.{key}" if path else key


def violation(path: str, message: str, mark: Mark | None) -> Violation:
    """A violation at `path`, with the line and column of `mark` when known."""
    line, column = mark if mark and mark[0] else (None, None)
    return Violation(path=path, message=message, line=line, column=column)
