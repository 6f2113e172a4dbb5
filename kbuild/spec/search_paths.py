"""Parameter paths against the spec: checked at validate time, and turned into `--set` overrides.

A trial is `kbuild train SPEC --set path=value ...`: its overrides go through the loader's own
`--set` code (`apply_overrides`, then `validate`). `kbuild validate` checks every parameter the
same way, once per extreme value of its space, on a copy of the spec's data: an unknown path, or a
value the field rejects, is an error located at the parameter's key under `search.parameters`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from kbuild.errors import SpecError, SpecIssue
from kbuild.spec.loader import apply_overrides, validate
from kbuild.spec.search import SearchSpec
from kbuild.spec.source import Located

# The trial's spec is the tuned spec without its search: best.yaml and each trial's spec.yaml are
# plain training specs.
WITHOUT_SEARCH = "search=null"


def override(path: str, value: Any) -> str:
    """`path=value` with the value written as JSON (which is YAML), so the loader parses back
    exactly `value`: a string such as "1e-3" or "yes" stays quoted, where plain YAML would
    leave it bare and the loader read a number or a bool."""
    return f"{path}={json.dumps(value, ensure_ascii=False)}"


def trial_overrides(search: SearchSpec, sampled: Mapping[str, Any]) -> list[str]:
    """The `--set` overrides of one trial, from the values Optuna sampled (its representation)."""
    return [override(path, search.parameters[path].decode(sampled[path])) for path in search.parameters
            if path in sampled] + [WITHOUT_SEARCH]


def search_issues(located: Located, spec: Any) -> list[SpecIssue]:
    """Every problem of `spec.search`, located: cross-section checks, then each parameter's
    extreme values applied to `located` (the merged, overridden spec data) as `--set` would."""
    search: SearchSpec = spec.search
    issues = [_at(located, ("search", *loc), message) for loc, message in search.issues(spec)]
    base = copy.deepcopy(located.data)
    base.pop("search", None)
    for path, space in search.parameters.items():
        problems = [(label, value, _problem(base, path, value)) for label, value in space.extremes()]
        rejected = [(label, value, problem) for label, value, problem in problems if problem]
        if not rejected:
            continue
        key = ("search", "parameters", path)
        if len(rejected) == len(problems) and len({p for _, _, p in rejected}) == 1:
            issues.append(_at(located, key, rejected[0][2]))  # the path itself is wrong
            continue
        for label, value, problem in rejected:
            issues.append(_at(located, key, f"{label} {value!r} is rejected: {problem}"))
    return issues


def _problem(base: Any, path: str, value: Any) -> str | None:
    """Why the spec would not accept `--set path=value`, or None."""
    candidate = Located(copy.deepcopy(base), {})
    found = apply_overrides(candidate, [override(path, value)])
    if not found:
        try:
            validate(candidate)
        except SpecError as exc:
            found = exc.issues
    return "; ".join(i.message if i.key == path else f"{i.key}: {i.message}" for i in found) or None


def _at(located: Located, key: tuple[str | int, ...], message: str) -> SpecIssue:
    where = located.position(key)
    return SpecIssue(where.file, where.line, where.column, ".".join(str(k) for k in key), message)
