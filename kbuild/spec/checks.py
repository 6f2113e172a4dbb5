"""Checks of a spec that need more than the spec layer knows, passed in by the caller.

The spec sits below the tasks (it imports no task module), but whether `task:` names a task and
what each task refuses (a `crf` head on a classifier, a seq2seq without decoder) is the tasks'
knowledge. `kbuild.tasks.checks` builds a `SpecChecks` from the task registry and
`kbuild.load_spec` passes it to the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbuild.spec.root import Spec

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class SpecChecks:
    """Args:
        task_names: the registered tasks; `task:` must be one of them (checked alongside the
            field errors, so a misspelt task is reported with everything else).
        issues: (location, message) of each problem of a valid spec that the tasks see.
        complete: see below.
    """

    task_names: tuple[str, ...]
    issues: Callable[[Spec], Iterable[tuple[Location, str]]]
    complete: Callable[[Spec], None] = lambda spec: None
    """Fills the task's defaults of fields the spec left unset (a tagger selects on `val_f1`),
    before `issues` runs."""
