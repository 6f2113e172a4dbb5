"""Reading spec files into plain data while remembering where every key came from.

YAML is composed into nodes (never constructed with Python tags), so each key keeps its file, line
and column; JSON is read by the same path because JSON is a subset of YAML's flow style. The result
is a `Located` document: the data plus a map from key path to source position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    file: str
    line: int | None = None
    column: int | None = None


@dataclass
class Located:
    """Plain data (dicts, lists, scalars) and the source position of every key path."""

    data: Any
    positions: dict[Path_, Position] = field(default_factory=dict)

    def position(self, path: Path_) -> Position:
        """The position of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return Position("<spec>")


class SourceError(Exception):
    """A file that cannot be read as a spec at all (syntax error, Python tag, duplicate key)."""

    def __init__(self, position: Position, key: str, message: str):
        self.position, self.key, self.message = position, key, message
        super().__init__(message)


def _mark(file: str, mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(file)
    return Position(file, mark.line + 1, mark.column + 1)


def read_document(path: Path) -> Located:
    """Parse one YAML or JSON file into a `Located` document (no `extends:` handling here)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(Position(file), "", "spec file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(Position(file), "", f"cannot read spec file: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        raise SourceError(_mark(file, exc.problem_mark), "", f"invalid YAML/JSON: {problem}") from None
    if node is None:
        raise SourceError(Position(file, 1, 1), "", "spec file is empty")
    located = Located(None, {(): Position(file, 1, 1)})
    located.data = _convert(node, (), file, located.positions)
    return located


_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _convert(node: yaml.Node, path: Path_, file: str, positions: dict) -> Any:
    expected_tag = _COLLECTION_TAGS.get(type(node))
    if expected_tag and node.tag != expected_tag:
        # e.g. !!python/object/apply on a list: refuse it rather than silently drop the tag.
        raise SourceError(_mark(file, node.start_mark), _dotted(path), f"unsupported YAML tag: {node.tag}")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, file)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SourceError(_mark(file, key_node.start_mark), _dotted(path), "YAML merge keys (<<) are not supported; use `extends:`")
            key = str(key)
            child = (*path, key)
            if key in out:
                raise SourceError(_mark(file, key_node.start_mark), _dotted(child), "duplicate key")
            positions[child] = _mark(file, key_node.start_mark)
            out[key] = _convert(value_node, child, file, positions)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            positions[(*path, i)] = _mark(file, item.start_mark)
            items.append(_convert(item, (*path, i), file, positions))
        return items
    return _scalar(node, path, file)


def _scalar(node: yaml.Node, path: Path_, file: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SourceError(_mark(file, node.start_mark), _dotted(path), "keys must be plain scalars")
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        # Safe loading refuses Python tags such as !!python/object; say so instead of a traceback.
        raise SourceError(_mark(file, node.start_mark), _dotted(path), f"unsupported YAML tag: {exc.problem}") from None
    finally:
        loader.dispose()


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def merge(base: Located, overlay: Located) -> Located:
    """`overlay` on top of `base`: mappings merge key by key, anything else is replaced whole."""
    positions = dict(base.positions)
    data = _merge(base.data, overlay.data, (), positions, overlay.positions)
    return Located(data, positions)


def _merge(base: Any, over: Any, path: Path_, positions: dict, over_positions: dict) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            child = (*path, key)
            if key in out:
                out[key] = _merge(out[key], value, child, positions, over_positions)
            else:
                out[key] = value
                _copy_positions(child, positions, over_positions)
            if child in over_positions:
                positions[child] = over_positions[child]
        return out
    # Replaced whole: forget the base's positions below this path, take the overlay's.
    for stale in [p for p in positions if p[: len(path)] == path and len(p) > len(path)]:
        del positions[stale]
    _copy_positions(path, positions, over_positions)
    return over


def _copy_positions(path: Path_, positions: dict, over_positions: dict) -> None:
    for p, pos in over_positions.items():
        if p[: len(path)] == path:
            positions[p] = pos
