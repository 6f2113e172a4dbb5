"""`EpochScores`: scores of one split, from the model's current weights, in every epoch's logs.

For metrics Keras cannot compute batch by batch (a tagger's entity F1, a summary's ROUGE), a task
adds a subclass through `Task.epoch_callbacks`; it runs before the callbacks that read the logs (the
best-model checkpoint, early stopping, metrics.jsonl, TensorBoard). Valid gets `val_` names; train,
scored when a run has no valid split, plain ones, as the training loop's monitor drops `val_` then.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle


LOUD_ROWS = 500
"""A split this large is announced before it is scored."""
LOUD_SECONDS = 5.0
"""Scoring that took this long is logged with its time."""


class EpochScores(keras.callbacks.Callback):
    """Args:
        bundle: the run's data bundle.
        spec: the run's spec.
        split: `valid`, or `train` for a run without a valid split.
    """

    def __init__(self, bundle: DataBundle, spec: Spec, split: str):
        super().__init__()
        self.bundle, self.spec, self.split = bundle, spec, split
        self.prefix = "val_" if split == "valid" else ""
        self._decoder: Any = None

    def make_decoder(self) -> Any:
        """What turns the split into predictions, built once on `self.model`'s layers (so always
        with its current weights)."""
        raise NotImplementedError

    def scores(self, decoder: Any) -> dict[str, float]:
        """The split's scores with `decoder`, by name without the prefix."""
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # Decoding a split is minutes for a large one (AESLC's 1,960 dev emails, beam 4): say so,
        # or the log is silent between the epoch's last step and its summary line.
        rows = len(self.bundle.examples[self.split])
        if rows >= LOUD_ROWS:
            print(f"[kbuild] epoch {epoch + 1}: scoring {self.split} ({rows:,} rows) for its {self.prefix}* metrics",
                  file=sys.stderr, flush=True)
        started = time.perf_counter()
        if self._decoder is None:
            self._decoder = self.make_decoder()
        for name, value in self.scores(self._decoder).items():
            logs[f"{self.prefix}{name}"] = float(value)
        if (seconds := time.perf_counter() - started) >= LOUD_SECONDS:
            print(f"[kbuild] epoch {epoch + 1}: scored {self.split} in {seconds:.1f} s", file=sys.stderr, flush=True)
