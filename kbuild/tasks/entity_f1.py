"""`val_f1`: conlleval entity F1 of a tagger on the valid split at every epoch end.

Token accuracy is dominated by `O` (on a sparse-entity set a model that tags everything `O` scores
0.95), so a tagger must be selected and early-stopped on entity F1. Keras metrics see one batch of
padded tag ids at a time and cannot count entities, so this callback decodes the whole split (Viterbi
inside the graph, as evaluation and serving do; `TagScorer`) and scores it with `kbuild.tasks.conlleval`. It
writes `val_f1`, `val_precision` and `val_recall` into the epoch's logs before the callbacks after
it run: the best-model checkpoint, early stopping, metrics.jsonl and TensorBoard all see them.
Without a valid split it scores train instead, as `f1` (the monitor loses its `val_` prefix then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.tasks import conlleval
from kbuild.tasks.epoch_scores import EpochScores

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle
    from kbuild.tasks.tagging import TaggingTask


class EntityF1(EpochScores):
    """Adds conlleval precision/recall/F1 of `split` to each epoch's logs (see `EpochScores`).

    Args:
        task: the tagging task (decodes and aligns predictions with the examples).
        bundle: the run's data bundle.
        spec: the run's spec.
        split: `valid`, or `train` for a run without a valid split.
    """

    def __init__(self, task: TaggingTask, bundle: DataBundle, spec: Spec, split: str):
        super().__init__(bundle, spec, split)
        self.task = task
        self.gold = [example.label for example in bundle.examples[split]]

    def make_decoder(self) -> Any:
        # The model's `TagScorer`, traced once and shared with the final scores of this model.
        from kbuild.tasks.tag_scoring import scorer_for

        return scorer_for(self.model, self.spec, len(self.bundle.labels))

    def scores(self, decoder: Any) -> dict[str, float]:
        predicted = self.task.predict_tags(decoder, self.bundle, self.split)
        report = conlleval.score(self.gold, predicted).report()
        return {name: float(report[name]) for name in ("f1", "precision", "recall")}
