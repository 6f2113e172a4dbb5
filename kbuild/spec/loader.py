"""`load_spec`: file(s) -> `extends:` chain -> `--set` overrides -> `${VAR}` expansion -> `Spec`.

Every problem is collected and raised together as one `SpecError`, each located as
`FILE:LINE:COL: key.path: message`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pydantic

from kbuild.errors import SpecError, SpecIssue
from kbuild.registry import did_you_mean
from kbuild.spec.checks import SpecChecks
from kbuild.spec.messages import describe_error
from kbuild.spec.model import ModelSpec
from kbuild.spec.root import Spec
from kbuild.spec.source import (
    Located,
    Path_,
    Position,
    SourceError,
    merge,
    parse_text,
    read_document,
)

OVERRIDE_SOURCE = "--set"
MAX_EXTENDS = 16
"""Longest `extends:` chain: a base, a few variants of it, never hundreds."""
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_spec(path: str | os.PathLike, overrides: Sequence[str] = (), checks: SpecChecks | None = None) -> Spec:
    """Load, merge, override, expand and validate a spec file; raise `SpecError` listing every problem.

    Args:
        path: a YAML or JSON spec file.
        overrides: `key.path=value` strings; values are parsed as YAML (`3` is an int, `[64]` a list).
        checks: the task-level checks (`kbuild.load_spec` passes the task registry's); without
            them only the spec's own fields and cross-field rules are checked.

    Examples:
    >>> spec = load_spec("specs/quickstart.yaml", ["train.epochs=1"])
    >>> spec.train.epochs
    1
    """
    try:
        located = _read_with_extends(Path(path), chain=())
    except SourceError as exc:
        raise SpecError([_issue(exc.position, exc.key, exc.message)]) from None
    issues = apply_overrides(located, overrides)
    issues += _expand_env(located.data, (), located)
    try:
        spec = validate(located, checks)
    except SpecError as exc:
        issues += exc.issues
    else:
        if spec.search is not None:  # its parameter paths are checked against this very data
            from kbuild.spec.search_paths import search_issues

            issues += search_issues(located, spec)
    if issues:
        raise SpecError(issues)
    spec._source = str(path)
    return spec


def validate(located: Located, checks: SpecChecks | None = None) -> Spec:
    """Validate plain data against `Spec`, then run the cross-field checks (and `checks`).

    Every problem comes out at once: when fields are wrong, the cross-field and task checks still
    run, on the spec with the wrong keys left out (see `_checks_without`)."""
    task_issues = _task_name_issues(located, checks)
    try:
        spec = Spec.model_validate(located.data, strict=True)
    except pydantic.ValidationError as exc:
        by_key: dict[Path_, list[str]] = {}
        for error in exc.errors(include_url=False):
            key_path, message = describe_error(error, located.data)
            if message not in by_key.setdefault(key_path, []):
                by_key[key_path].append(message)
        # Several messages for one key come from the members of a union: any one would do.
        issues = [
            _issue(located.position(key), _dotted(key), " | or ".join(messages))
            for key, messages in by_key.items()
        ]
        issues += _section_issues(located) + task_issues
        issues += [issue for issue in _checks_without(located, list(by_key), checks if not task_issues else None)
                   if issue not in issues]
        raise SpecError(issues) from None
    if task_issues:
        raise SpecError(task_issues)
    if checks is not None:
        checks.complete(spec)
    issues = [
        _issue(located.position(loc), _dotted(loc), message)
        for loc, message in (*spec.issues(), *(checks.issues(spec) if checks else ()))
    ]
    if issues:
        raise SpecError(issues)
    return spec


_REPAIR_ROUNDS = 3


def _checks_without(located: Located, wrong: list[Path_], checks: SpecChecks | None) -> list[SpecIssue]:
    """The cross-field and task checks of the spec with every wrong key removed (so it takes the
    default), when that spec validates; issues at or below a removed key are left out, since they
    would describe the default rather than what the user wrote."""
    data = copy.deepcopy(located.data)
    removed: list[Path_] = []
    for _ in range(_REPAIR_ROUNDS):
        for key in reversed(wrong):  # last first, so removing a list item keeps earlier indices
            if not key or not _remove(data, key):
                return []
            removed.append(key)
        try:
            spec = Spec.model_validate(data, strict=True)
        except pydantic.ValidationError as exc:
            wrong = list(dict.fromkeys(describe_error(error, data)[0] for error in exc.errors(include_url=False)))
            continue
        found = (*spec.issues(), *(checks.issues(spec) if checks else ()))
        return [_issue(located.position(loc), _dotted(loc), message) for loc, message in found
                if not any(_overlaps(tuple(loc), key) for key in removed)]
    return []


def _remove(data: Any, key: Path_) -> bool:
    """Delete `key` from nested dicts/lists; False when it is not there (a missing required key)."""
    node = data
    for part in key[:-1]:
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    last = key[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    return False


def _overlaps(a: Path_, b: Path_) -> bool:
    """Whether one path is the other or lies below it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _task_name_issues(located: Located, checks: SpecChecks | None) -> list[SpecIssue]:
    """`task:` must name a registered task (a missing or non-string one is a field error)."""
    task = located.data.get("task") if isinstance(located.data, dict) else None
    if checks is None or not isinstance(task, str) or task in checks.task_names:
        return []
    names = sorted(checks.task_names)
    message = f"unknown task {task!r}; expected one of {', '.join(names)}{did_you_mean(task, names)}"
    return [_issue(located.position(("task",)), "task", message)]


def _section_issues(located: Located) -> list[SpecIssue]:
    """Cross-field checks of the `model` section on its own, so they are reported alongside
    errors elsewhere in the spec instead of only once everything else is fixed."""
    section = located.data.get("model", {}) if isinstance(located.data, dict) else {}
    try:
        model = ModelSpec.model_validate(section)
    except pydantic.ValidationError:
        return []  # its field errors are already in the list
    return [_issue(located.position(("model", *loc)), _dotted(("model", *loc)), message) for loc, message in model.issues()]


def _read_with_extends(path: Path, chain: tuple[Path, ...]) -> Located:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise SourceError(Position(str(path)), "extends", f"`extends:` cycle: {cycle}")
    if len(chain) >= MAX_EXTENDS:
        raise SourceError(Position(str(path)), "extends", f"`extends:` chain is longer than {MAX_EXTENDS} files")
    document = read_document(path)
    if not isinstance(document.data, dict):
        raise SourceError(Position(str(path), 1, 1), "", "a spec must be a mapping of keys")
    parent = document.data.pop("extends", None)
    if parent is None:
        return document
    where = document.positions.pop(("extends",))
    if not isinstance(parent, str):
        raise SourceError(where, "extends", "expected the path of another spec file")
    parent_path = Path(parent) if Path(parent).is_absolute() else path.parent / parent
    if not parent_path.is_file():
        raise SourceError(where, "extends", f"spec file not found: {parent_path}")
    return merge(_read_with_extends(parent_path, (*chain, resolved)), document)


def apply_overrides(located: Located, overrides: Iterable[str]) -> list[SpecIssue]:
    """Apply `key.path=value` overrides in place; return the ones that could not be applied."""
    issues = []
    for text in overrides:
        key, sep, raw_value = text.partition("=")
        key = key.strip()
        where = Position(f"{OVERRIDE_SOURCE} {text}")
        if not sep or not key:
            issues.append(_issue(where, "", "expected KEY=VALUE, e.g. train.epochs=1"))
            continue
        try:
            value = parse_text(raw_value, where.file).data if raw_value.strip() else ""
        except SourceError as exc:
            issues.append(_issue(where, key, f"value is not valid YAML: {exc.message}"))
            continue
        path = tuple(int(p) if p.isascii() and p.isdigit() else p for p in key.split("."))
        problem = _set_path(located.data, path, value)
        if problem:
            issues.append(_issue(where, key, problem))
            continue
        for stale in [p for p in located.positions if p[: len(path)] == path]:
            del located.positions[stale]
        located.positions[path] = where
    return issues


def _set_path(data: Any, path: Path_, value: Any) -> str | None:
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, dict):
            node = node.setdefault(part, {}) if not isinstance(part, int) else None
        elif isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                return f"list index {part} is out of range (the list has {len(node)} items)"
            node = node[part]
        else:
            node = None
        if node is None or not isinstance(node, dict | list):
            return f"cannot set inside {_dotted(path[: i + 1])}: it is not a mapping or list"
    last = path[-1]
    if isinstance(node, dict):
        node[str(last)] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    else:
        return f"list index {last} is out of range"
    return None


def _expand_env(node: Any, path: Path_, located: Located) -> list[SpecIssue]:
    """Replace `${VAR}` and `${VAR:-default}` in every string; KBUILD_DATA defaults to the data root."""
    issues: list[SpecIssue] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        return issues
    for key, value in children:
        if isinstance(value, str) and "${" in value:
            try:
                node[key] = _ENV_PATTERN.sub(_env_value, value)
            except KeyError as exc:
                name = exc.args[0]
                issues.append(_issue(
                    located.position((*path, key)), _dotted((*path, key)),
                    f"environment variable {name} is not set (use ${{{name}:-default}} for a fallback)",
                ))
        else:
            issues += _expand_env(value, (*path, key), located)
    return issues


def _env_value(match: re.Match) -> str:
    name, default = match.group(1), match.group(2)
    if name in os.environ:
        return os.environ[name]
    if name == "KBUILD_DATA":
        from kbuild.paths import data_root

        return str(data_root())
    if default is not None:
        return default
    raise KeyError(name)


def _issue(position: Position, key: str, message: str) -> SpecIssue:
    return SpecIssue(position.file, position.line, position.column, key, message)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)
