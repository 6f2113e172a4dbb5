"""The whole spec: one typed object that every later stage receives."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from pydantic import Field, PrivateAttr, model_validator

from kbuild.spec.backbone import backbone_issues
from kbuild.spec.base import StrictModel
from kbuild.spec.compression import DistillSpec, PruneSpec
from kbuild.spec.data import DataSpec
from kbuild.spec.evaluation import EvalSpec
from kbuild.spec.export import ExportSpec
from kbuild.spec.memory import oversized
from kbuild.spec.model import ModelSpec
from kbuild.spec.preprocess import PreprocessSpec
from kbuild.spec.qa import QASpec
from kbuild.spec.search import SearchSpec
from kbuild.spec.train import FINE_TUNING_BUDGET, TrainSpec


class Spec(StrictModel):
    """A kbuild model spec. Field names are the contract documented in docs/architecture.md and
    the README; `kbuild schema` prints them all."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Run name: runs go to runs/<name>/<timestamp>/."""
    task: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """A registered task (`kbuild schema` lists them); checked by `kbuild.tasks.checks`."""
    description: str | None = None
    seed: int = Field(default=42, ge=0, lt=2**32)
    """Seeds every random generator (NumPy's and TF's take 32-bit seeds)."""
    data: DataSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    eval: EvalSpec | None = None
    """How generated text is scored (seq2seq: `metrics`); unset: the task's default (BLEU)."""
    qa: QASpec | None = None
    """extractive_qa: n-best decoding, answer length, null threshold and scorer (defaults when
    omitted)."""
    search: SearchSpec | None = None
    """Hyperparameter search run by `kbuild tune`; ignored by `kbuild train`."""
    prune: PruneSpec | None = None
    """Magnitude pruning during training (kbuild.compression.pruning)."""
    distill: DistillSpec | None = None
    """Train as the student of a trained teacher run (kbuild.compression.distillation)."""
    init_from: str | None = Field(default=None, min_length=1)
    """A trained run (`runs/NAME/STAMP`, or `runs/NAME` for its latest trained stamp) whose
    backbone (embedding + blocks, matched by layer name and shape) and tokenizer this run starts
    from (kbuild.training.init_from); the head is new. A masked_lm run before a classifier, a
    language_model run before another language model."""

    _source: str = PrivateAttr(default="<spec>")

    @model_validator(mode="after")
    def _fine_tuning_budget(self) -> Spec:
        """A pretrained backbone's `epochs: auto` budget is `FINE_TUNING_BUDGET` where the spec
        gives no field of its own (resolved here, so the run folder's spec.yaml records it)."""
        if self.model.backbone is not None:
            self.train.epoch_budget = self.train.epoch_budget.defaulting_to(FINE_TUNING_BUDGET)
        return self

    @property
    def evaluation(self) -> EvalSpec:
        """`eval:`, or its defaults where the spec leaves the section out (it then stays out of the
        resolved spec and its hash)."""
        return self.eval or EvalSpec()

    @property
    def source(self) -> str:
        """The file this spec was loaded from (for messages)."""
        return self._source

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-section problems that field validators cannot see (task-level ones are the
        tasks' to find: `kbuild.tasks.checks`)."""
        for loc, message in self.model.issues():
            yield ("model", *loc), message
        yield from backbone_issues(self)
        yield from self._init_from_issues()
        yield from oversized(self)  # refused before anything allocates (kbuild.spec.memory)

    def _init_from_issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.init_from is None:
            return
        if self.model.backbone is not None:
            yield ("init_from",), ("init_from starts kbuild's own embedding and blocks from a run; model.backbone "
                                   "loads a pretrained checkpoint instead: keep one of them")
        if self.model.embedding.pretrained is not None:
            yield ("model", "embedding", "pretrained"), ("init_from already starts the embedding from a run; "
                                                         "remove model.embedding.pretrained")

    def resolved(self) -> dict:
        """Plain data with every default filled: what the run folder's spec.yaml holds."""
        # Absent search:, init_from, eval: and qa: stay absent, so specs without them resolve (and hash) as before.
        unset = {name for name in ("search", "init_from", "eval", "qa") if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=unset or None)

    def fingerprint(self) -> str:
        """Stable hash of the resolved spec (recorded in export metadata)."""
        text = json.dumps(self.resolved(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
