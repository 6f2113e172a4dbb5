"""The whole spec: one typed object that every later stage receives."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, PrivateAttr

from kbuild.pretrained.spec import backbone_issues
from kbuild.spec.base import StrictModel
from kbuild.spec.data import DataSpec
from kbuild.spec.export import ExportSpec
from kbuild.spec.model import ModelSpec
from kbuild.spec.preprocess import PreprocessSpec
from kbuild.spec.train import TrainSpec
from kbuild.tasks import TASKS

TaskName = Literal[TASKS.names()]  # type: ignore[valid-type]


class Spec(StrictModel):
    """A kbuild model spec. Field names are the contract documented in DESIGN.md."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Run name: runs go to runs/<name>/<timestamp>/."""
    task: TaskName
    description: str | None = None
    seed: int = 42
    data: DataSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)

    _source: str = PrivateAttr(default="<spec>")

    @property
    def source(self) -> str:
        """The file this spec was loaded from (for messages)."""
        return self._source

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-section problems that field validators cannot see."""
        for loc, message in self.model.issues():
            yield ("model", *loc), message
        yield from backbone_issues(self)
        task = TASKS.get(self.task)
        yield from task.spec_issues(self)
        yield from self._unused_task_fields()

    def _unused_task_fields(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """A field that only other tasks read, set away from its default, would be silently
        ignored: say so instead (each task declares the fields it owns in `Task.owned_fields`)."""
        owners: dict[tuple[str, ...], list[str]] = {}
        for name, other in TASKS.items():
            for path in other.owned_fields:
                owners.setdefault(path, []).append(name)
        for path, tasks in owners.items():
            if self.task in tasks:
                continue
            section: StrictModel = self
            for key in path[:-1]:
                section = getattr(section, key)
            field = type(section).model_fields[path[-1]]
            if getattr(section, path[-1]) != field.get_default(call_default_factory=True):
                yield path, (f"only task {' or '.join(sorted(tasks))} reads this field; it would have no effect "
                             f"with task {self.task}: remove it")

    def resolved(self) -> dict:
        """Plain data with every default filled: what the run folder's spec.yaml holds."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """Stable hash of the resolved spec (recorded in export metadata)."""
        text = json.dumps(self.resolved(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
