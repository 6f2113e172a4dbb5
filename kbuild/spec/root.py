"""The whole spec: one typed object that every later stage receives."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from pydantic import Field, PrivateAttr

from kbuild.spec.base import StrictModel
from kbuild.spec.compression import DistillSpec, PruneSpec
from kbuild.spec.data import DataSpec
from kbuild.spec.export import ExportSpec
from kbuild.spec.model import ModelSpec
from kbuild.spec.preprocess import PreprocessSpec
from kbuild.spec.train import TrainSpec


class Spec(StrictModel):
    """A kbuild model spec. Field names are the contract documented in docs/architecture.md and
    the README; `kbuild schema` prints them all."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Run name: runs go to runs/<name>/<timestamp>/."""
    task: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """A registered task (`kbuild schema` lists them); checked by `kbuild.tasks.checks`."""
    description: str | None = None
    seed: int = 42
    data: DataSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    prune: PruneSpec | None = None
    """Magnitude pruning during training (kbuild.compression.pruning)."""
    distill: DistillSpec | None = None
    """Train as the student of a trained teacher run (kbuild.compression.distillation)."""

    _source: str = PrivateAttr(default="<spec>")

    @property
    def source(self) -> str:
        """The file this spec was loaded from (for messages)."""
        return self._source

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-section problems that field validators cannot see (task-level ones are the
        tasks' to find: `kbuild.tasks.checks`)."""
        for loc, message in self.model.issues():
            yield ("model", *loc), message

    def resolved(self) -> dict:
        """Plain data with every default filled: what the run folder's spec.yaml holds."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """Stable hash of the resolved spec (recorded in export metadata)."""
        text = json.dumps(self.resolved(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
