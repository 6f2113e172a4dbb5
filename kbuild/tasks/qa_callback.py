"""`val_f1` and `val_exact_match` of an extractive QA model at every epoch end.

The loss sees windows; the answer a user gets is the best span over all windows of a question, so a
QA model is selected and early-stopped on the decoded answers' F1. This callback answers the whole
split with the same in-graph function the export serves and writes the scores into the epoch's logs
before the callbacks after it run (checkpoint, early stopping, metrics.jsonl). Without a valid
split it scores train, as `f1` and `exact_match`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle
    from kbuild.tasks.extractive_qa import ExtractiveQATask


class AnswerScores(keras.callbacks.Callback):
    """Adds exact match and F1 of `split`'s decoded answers to each epoch's logs."""

    def __init__(self, task: ExtractiveQATask, bundle: DataBundle, spec: Spec, split: str):
        super().__init__()
        self.task, self.bundle, self.spec, self.split = task, bundle, spec, split
        self.prefix = "val_" if split == "valid" else ""
        self._answer = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._answer is None:  # traced once on the training model's layers: always its current weights
            self._answer = self.task.answer_function(self.model, self.bundle, self.spec)
        scores = self.task.score(self.model, self.bundle, self.bundle.examples[self.split], self.spec, self._answer)
        for name in ("exact_match", "f1"):
            logs[f"{self.prefix}{name}"] = float(scores[name])
