"""The task-level spec checks, and `load_spec` with them: what `kbuild.load_spec`, the CLI and
every run loader use.

The spec layer validates fields and cross-field rules on its own; whether `task:` names a
registered task, what that task refuses (`Task.spec_issues`), and fields only other tasks read
(`Task.owned_fields`) are known here, above the spec.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from kbuild.data.builtin import BUILTINS
from kbuild.data.readers import READERS
from kbuild.data.readers.base import column_problem
from kbuild.registry import did_you_mean
from kbuild.spec.checks import Location, SpecChecks
from kbuild.spec.loader import load_spec as load_fields
from kbuild.tasks.base import TASKS

if TYPE_CHECKING:
    from kbuild.spec.base import StrictModel
    from kbuild.spec.root import Spec


def task_issues(spec: Spec) -> Iterator[tuple[Location, str]]:
    """What the spec's task refuses, fields only other tasks read, metric names the task does
    not log, and data settings no reader understands."""
    yield from TASKS.get(spec.task).spec_issues(spec)
    yield from unused_task_fields(spec)
    yield from monitor_issues(spec)
    yield from data_issues(spec)
    if spec.init_from is not None and not TASKS.get(spec.task).backbone_init:
        able = ", ".join(name for name, task in TASKS.items() if task.backbone_init)
        yield ("init_from",), (f"task {spec.task} builds an encoder-decoder model; init_from starts the "
                               f"backbone of a model of task {able}")


def monitor_issues(spec: Spec) -> Iterator[tuple[Location, str]]:
    """`train.monitor` and `train.early_stopping.monitor` must name a metric the task logs;
    a misspelt one would otherwise only fail (or silently never improve) after the first epoch."""
    names = TASKS.get(spec.task).metric_names(spec)
    monitors = [(("train", "monitor"), spec.train.monitor)]
    if spec.train.early_stopping is not None:
        monitors.append((("train", "early_stopping", "monitor"), spec.train.early_stopping.monitor))
    for loc, name in monitors:
        if name not in names:
            yield loc, (f"task {spec.task} logs no metric {name!r}{did_you_mean(name, names)}; "
                        f"expected one of: {', '.join(names)}")


def data_issues(spec: Spec) -> Iterator[tuple[Location, str]]:
    """Column roles (the task's inputs and `label`) and built-in dataset names (both known to
    `kbuild.data`)."""
    data, task = spec.data, TASKS.get(spec.task)
    roles = task.roles()
    for role, column in data.columns.items():
        if problem := column_problem(role, column, data.header, roles):
            yield ("data", "columns", role), problem
    for name in task.inputs:
        if name not in data.columns:
            yield ("data", "columns"), (f"no {name!r} column given; task {spec.task} reads "
                                        f"{', '.join(task.inputs)}; e.g. columns: {{{name}: {name}}}")
    yield from format_issues(spec)
    if data.builtin is not None and data.builtin not in BUILTINS.names():
        names = list(BUILTINS.names())
        yield ("data", "builtin"), (f"unknown built-in dataset {data.builtin!r}{did_you_mean(data.builtin, names)}; "
                                    f"expected one of: {', '.join(names)}")


def format_issues(spec: Spec) -> Iterator[tuple[Location, str]]:
    """What the file format refuses of a spec that validates field by field: CoNLL files have no
    header to name columns in, and a parallel corpus needs the extension of its target side."""
    data = spec.data
    fmt = data.format
    if fmt is None and data.train is not None:
        suffix = os.path.splitext(data.train)[1].lower()
        fmt = next((name for name, reader in READERS.items() if suffix and suffix in reader.extensions), None)
    if fmt == "conll":
        for role, column in data.columns.items():
            if isinstance(column, str) and column != role:
                yield ("data", "columns", role), (f"{column!r} is a column name, but CoNLL files have no header; give a "
                                                  "0-based column index, e.g. columns: {text: 0, label: 3}")
    if fmt == "parallel" and data.target_suffix is None:
        yield ("data", "target_suffix"), ("format parallel needs the extension of the aligned target file, "
                                          "e.g. target_suffix: .de (train.en pairs with train.de)")


def unused_task_fields(spec: Spec) -> Iterator[tuple[Location, str]]:
    """A field that only other tasks read, set away from its default, would be silently
    ignored: say so instead (each task declares the fields it owns in `Task.owned_fields`)."""
    owners: dict[tuple[str, ...], list[str]] = {}
    for name, other in TASKS.items():
        for path in other.owned_fields:
            owners.setdefault(path, []).append(name)
    for path, tasks in owners.items():
        if spec.task in tasks:
            continue
        section: StrictModel | None = spec
        for key in path[:-1]:
            section = getattr(section, key)
        if section is None:  # an optional section left out (eval:) sets none of its fields
            continue
        field = type(section).model_fields[path[-1]]
        if getattr(section, path[-1]) != field.get_default(call_default_factory=True):
            yield path, (f"only task {' or '.join(sorted(tasks))} reads this field; it would have no effect "
                         f"with task {spec.task}: remove it")


def task_defaults(spec: Spec) -> None:
    """An unset `train.monitor` is the task's selection metric (a tagger's `val_f1`), so a spec
    that leaves it out selects on what it is scored on, and an unset `train.early_stopping.monitor`
    is `train.monitor`: a spec that selects on `val_rougeL` stops on it too; unset
    `data.columns` of a task that reads other texts than `text` are columns named after them."""
    task = TASKS.get(spec.task)
    default = task.default_monitor
    if "monitor" not in spec.train.model_fields_set:
        spec.train.monitor = default
    stopping = spec.train.early_stopping
    if stopping is not None and "monitor" not in stopping.model_fields_set:
        stopping.monitor = spec.train.monitor
    if "columns" not in spec.data.model_fields_set and task.inputs != ("text",):
        spec.data.columns = task.default_columns()


def task_checks() -> SpecChecks:
    """The checks of every task registered now (a task registered after import, by a plug-in or
    a test, is known too)."""
    return SpecChecks(TASKS.names(), task_issues, task_defaults)


def load_spec(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Spec:
    """Load and validate a spec file with every check, the tasks' included (see
    `kbuild.spec.loader.load_spec` for the arguments); raise `SpecError` listing every problem.

    Examples:
    >>> spec = load_spec("specs/quickstart.yaml", ["train.epochs=1"])
    >>> spec.train.epochs
    1
    """
    return load_fields(path, overrides, task_checks())
