"""`val_f1` and `val_exact_match` of an extractive QA model at every epoch end.

The loss sees windows; the answer a user gets is the best span over all windows of a question, so a
QA model is selected and early-stopped on the decoded answers' F1. This `EpochScores` answers the
whole split with the same in-graph function the export serves (traced once on the training model's
layers) and scores it with `qa.metric`. Without a valid split it scores train, as `f1` and
`exact_match`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.tasks.epoch_scores import EpochScores

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle
    from kbuild.tasks.extractive_qa import ExtractiveQATask


class AnswerScores(EpochScores):
    """Exact match and F1 of `split`'s decoded answers in each epoch's logs."""

    def __init__(self, task: ExtractiveQATask, bundle: DataBundle, spec: Spec, split: str):
        super().__init__(bundle, spec, split)
        self.task = task

    def make_decoder(self) -> Any:
        return self.task.answer_function(self.model, self.bundle, self.spec)

    def scores(self, decoder: Any) -> dict[str, float]:
        scores = self.task.score(self.model, self.bundle, self.bundle.examples[self.split], self.spec, decoder)
        return {name: scores[name] for name in ("exact_match", "f1")}
