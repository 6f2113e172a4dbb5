"""`val_rougeL`, `val_bleu`, ...: the spec's decoded metrics (`eval.metrics`) on the valid split
at every epoch end, for selecting and early-stopping a seq2seq run on what it is scored on.

Teacher-forced loss says little about a summary's ROUGE (Keras metrics see one batch of
next-token predictions at a time, never a decoded text), so this callback decodes the whole split
as evaluation and the export do (`Translator`: the spec's search, beams and constraints) and scores
it. Decoding a split costs far more than a teacher-forced pass, so the task adds it only when a
monitor names a decoded metric. Without a valid split it scores train, without the `val_` prefix
(`kbuild.tasks.epoch_scores`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.tasks.decoded_metrics import score_all, selected
from kbuild.tasks.epoch_scores import EpochScores

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle


class DecodedScores(EpochScores):
    """Adds the spec's decoded metrics of `split` to each epoch's logs (see `EpochScores`)."""

    def __init__(self, bundle: DataBundle, spec: Spec, split: str):
        super().__init__(bundle, spec, split)
        self.sources = [example.text for example in bundle.examples[split]]
        self.references = [example.label for example in bundle.examples[split]]

    def make_decoder(self) -> Any:
        from kbuild.decoding.translator import Translator

        return Translator(self.model, self.bundle.tokenizer, self.bundle.target, self.spec)

    def scores(self, decoder: Any) -> dict[str, float]:
        return score_all(selected(self.spec), decoder.translate(self.sources), self.references)
