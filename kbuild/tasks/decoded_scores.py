"""`val_rougeL`, `val_bleu`, ...: the spec's decoded metrics (`eval.metrics`) on the valid split
at every epoch end, for selecting and early-stopping a seq2seq run on what it is scored on.

Teacher-forced loss says little about a summary's ROUGE (Keras metrics see one batch of
next-token predictions at a time, never a decoded text), so this callback decodes the whole split
as evaluation and the export do (`Translator`: the spec's search, beams and constraints) and scores
it. It writes its scores into the epoch's logs before the callbacks after it run: the best-model
checkpoint, early stopping, metrics.jsonl and TensorBoard all see them. Decoding a split costs far
more than a teacher-forced pass, so the task adds it only when a monitor names a decoded metric.
Without a valid split it scores train instead, without the `val_` prefix, as the training loop's
monitor drops it then (the same rule as a tagger's `val_f1`: `kbuild.tasks.entity_f1`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kbuild.tasks.decoded_metrics import score_all, selected

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle


class DecodedScores(keras.callbacks.Callback):
    """Adds the spec's decoded metrics of `split` to each epoch's logs.

    Args:
        bundle: the run's data bundle (tokenizers and the split's examples).
        spec: the run's spec (`eval.metrics`, the decoder's search).
        split: `valid`, or `train` for a run without a valid split.
    """

    def __init__(self, bundle: DataBundle, spec: Spec, split: str):
        super().__init__()
        self.bundle, self.spec, self.split = bundle, spec, split
        self.prefix = "val_" if split == "valid" else ""
        self.sources = [example.text for example in bundle.examples[split]]
        self.references = [example.label for example in bundle.examples[split]]
        self._translator: Any = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._translator is None:  # built once on the training model's layers: always its current weights
            from kbuild.decoding.translator import Translator

            self._translator = Translator(self.model, self.bundle.tokenizer, self.bundle.target, self.spec)
        hypotheses = self._translator.translate(self.sources)
        for name, value in score_all(selected(self.spec), hypotheses, self.references).items():
            logs[f"{self.prefix}{name}"] = float(value)
