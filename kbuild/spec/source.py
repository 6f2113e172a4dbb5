"""Reading spec files into plain data while remembering where every key came from.

YAML is composed into nodes (never constructed with Python tags), so each key keeps its file, line
and column; JSON is read by the same path because JSON is a subset of YAML's flow style. The result
is a `Located` document: the data plus a map from key path to source position.
"""

from __future__ import annotations

import re
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


MAX_SPEC_BYTES = 1_000_000
"""A spec is a small hand-written file; anything larger is refused before parsing."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists: the deepest real spec is under 10 levels."""
MAX_VALUES = 20_000
"""Values a spec may expand to, aliases counted at every use: bounds `&a [*a, *a]` bombs."""
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}": name for name in ("null", "bool", "int", "float", "str")}
"""Scalar types a spec may hold; every other tag (`!!timestamp`, `!!binary`, ...) is refused."""


def read_document(path: Path) -> Located:
    """Parse one YAML or JSON file into a `Located` document (no `extends:` handling here)."""
    file = str(path)
    try:
        if path.is_dir():
            raise SourceError(Position(file), "", "is a folder, not a spec file")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SourceError(Position(file), "", f"spec file is over {MAX_SPEC_BYTES:,} bytes; a spec is a small file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(Position(file), "", "spec file not found") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SourceError(Position(file, line), "", f"spec file is not UTF-8: byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start}") from None
    except OSError as exc:
        raise SourceError(Position(file), "", f"cannot read spec file: {exc.strerror or exc}") from None
    located = parse_text(text, file)
    if located.data is None:
        raise SourceError(Position(file, 1, 1), "", "spec file is empty")
    return located


def parse_text(text: str, file: str) -> Located:
    """Parse YAML/JSON text into a `Located` document; every problem is a `SourceError` with a
    position (never a PyYAML, recursion or conversion exception)."""
    try:
        node = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        raise SourceError(_mark(file, exc.problem_mark), "", f"invalid YAML/JSON: {problem}") from None
    except yaml.reader.ReaderError as exc:
        # A control character or NUL: PyYAML reports an offset, not a line.
        raise SourceError(_offset_position(file, text, exc.position), "",
                          f"invalid YAML/JSON: character {_char(exc.character)} is not allowed "
                          "(control characters and NUL cannot appear in a spec)") from None
    except yaml.YAMLError as exc:
        raise SourceError(Position(file, 1, 1), "", f"invalid YAML/JSON: {exc}") from None
    except _DepthExceeded as exc:
        raise SourceError(_mark(file, exc.mark), "", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    except RecursionError:
        raise SourceError(Position(file, 1, 1), "", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    located = Located(None, {(): Position(file, 1, 1)})
    if node is not None:
        located.data = _convert(node, (), file, located.positions, _Budget())
    return located


class _DepthExceeded(Exception):
    def __init__(self, mark: yaml.Mark):
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per level: stop it at `MAX_DEPTH` (at the line where the
    limit is passed) instead of letting 100,000 brackets run into Python's recursion limit."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _DepthExceeded(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1 (PyYAML) reads `1e-3` as a string (its floats need a dot); JSON and YAML 1.2 read a
# number, and so does every user. Specs are validated strictly (no string where a number goes), so
# resolve the exponent form as a float here.
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _char(character: str | int) -> str:
    return f"U+{ord(character):04X}" if isinstance(character, str) else f"U+{character:04X}"


def _offset_position(file: str, text: str, offset: int) -> Position:
    before = text[:offset]
    return Position(file, before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


class _Budget:
    """Values converted so far, and the nodes on the current path (to spot an alias of itself)."""

    def __init__(self) -> None:
        self.values = 0
        self.ancestors: set[int] = set()


_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _convert(node: yaml.Node, path: Path_, file: str, positions: dict, budget: _Budget) -> Any:
    where = _mark(file, node.start_mark)
    budget.values += 1
    if budget.values > MAX_VALUES:
        raise SourceError(where, _dotted(path), f"the spec expands to over {MAX_VALUES:,} values "
                          "(aliases count at every use); a spec is a small file")
    if len(path) >= MAX_DEPTH:
        raise SourceError(where, _dotted(path), f"nested too deeply (at most {MAX_DEPTH} levels)")
    expected_tag = _COLLECTION_TAGS.get(type(node))
    if expected_tag and node.tag != expected_tag:
        # e.g. !!python/object/apply on a list: refuse it rather than silently drop the tag.
        raise SourceError(where, _dotted(path), f"unsupported YAML tag: {node.tag}")
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return _scalar(node, path, file)
    if id(node) in budget.ancestors:
        raise SourceError(where, _dotted(path), "an alias refers to a collection that contains it")
    budget.ancestors.add(id(node))
    try:
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
                out[key] = _convert(value_node, child, file, positions, budget)
            return out
        items = []
        for i, item in enumerate(node.value):
            positions[(*path, i)] = _mark(file, item.start_mark)
            items.append(_convert(item, (*path, i), file, positions, budget))
        return items
    finally:
        budget.ancestors.discard(id(node))


def _scalar(node: yaml.Node, path: Path_, file: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SourceError(_mark(file, node.start_mark), _dotted(path), "keys must be plain scalars")
    if node.tag == "tag:yaml.org,2002:merge":
        return "<<"
    kind = _PLAIN_TAGS.get(node.tag)
    if kind is None:
        short = node.tag.replace("tag:yaml.org,2002:", "!!")
        hint = " (quote the value to keep it as text)" if short == "!!timestamp" else ""
        raise SourceError(_mark(file, node.start_mark), _dotted(path),
                          f"unsupported YAML tag: {short}; a spec holds only strings, numbers, booleans and null{hint}")
    loader = yaml.SafeLoader("")
    try:
        value = loader.construct_object(node, deep=True)
        return _valid_unicode(value, node, path, file) if isinstance(value, str) else value
    except yaml.constructor.ConstructorError as exc:
        # Safe loading refuses Python tags such as !!python/object; say so instead of a traceback.
        raise SourceError(_mark(file, node.start_mark), _dotted(path), f"unsupported YAML tag: {exc.problem}") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        # An explicit tag on a value it does not fit (`!!int abc`, `!!bool maybe`), or an int past
        # Python's digit limit: a value error at its line, like any other.
        detail = str(exc).split(";")[0][:120] if isinstance(exc, ValueError) and "digits" in str(exc) else ""
        raise SourceError(_mark(file, node.start_mark), _dotted(path),
                          f"{node.value[:40]!r} is not a valid {kind}" + (f" ({detail})" if detail else "")) from None
    finally:
        loader.dispose()


def _valid_unicode(value: str, node: yaml.Node, path: Path_, file: str) -> str:
    """Escapes such as `"\\ud800"` give strings that are not Unicode (PyYAML also reads `"\\U00010000"`
    as a surrogate pair): join pairs into their character, refuse a lone surrogate."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise SourceError(_mark(file, node.start_mark), _dotted(path),
                          "not valid Unicode: a lone surrogate escape (\\ud800-\\udfff)") from None


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
