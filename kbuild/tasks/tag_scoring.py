"""A tagger's scoring pass: the decoded tags of every row of a split, and the compiled loss, from one
forward pass of the network.

Keras's `evaluate` gives the loss and `predict` on the tag decoder gives the tags: two passes, and
the decoder's read every row padded to `max_length` (180 characters on Resume NER, whose sentences
average 32), Viterbi included. Here rows are read shortest first, each batch cut to the smallest
bucket length that holds its longest row, as training's batches are under `preprocess.bucketing`,
and one traced function returns a batch's tags and loss. The tags go back into row order. On
Resume NER's valid split this takes 0.85 s against 5.1 s; on CoNLL-2003's test split, 1.3 s against
10.9 s (benchmarks/RESULTS.md, Session 33).

The functions are traced once per model for any batch and length (`input_signature`), and kept
with the model: the per-epoch `val_f1` reuses them at every epoch end, and the final scores of
train, valid and test share one trace.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from kbuild.spec import Spec

_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class TagScorer:
    """Tags (and loss) of a tagger on whole splits of encoded rows.

    Args:
        model: the tagger (its outputs a softmax per word or a `CRF`'s packed output).
        num_tags: tags in the label vocabulary.
        crf: the model ends in a `CRF` (Viterbi decoding), else a softmax (argmax).
        trim: cut each batch to its bucket length; only for a model trained on such batches
            (`preprocess.bucketing`), which is known to read any padded length alike.
        batch_size: rows per batch.
    """

    def __init__(self, model: Any, num_tags: int, crf: bool, trim: bool, batch_size: int):
        # Held weakly: the scorer is kept in a weak mapping keyed by the model, which a strong
        # reference from its value would keep alive for good.
        self._model = weakref.ref(model)
        self.num_tags, self.crf, self.trim, self.batch_size = num_tags, crf, trim, batch_size
        self._tags: Any = None
        self._loss_and_tags: Any = None

    def tags(self, features: Any) -> np.ndarray:
        """int32 tag ids `[rows, max_length]` in row order, -1 where no word is."""
        if self._tags is None:
            self._tags = self._traced(features, with_loss=False)
        _, tags = self._run(features, None)
        return tags

    def loss_and_tags(self, features: Any, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """The compiled loss (regularisation included) averaged over batches weighted by their
        rows, as Keras's `evaluate` reports it, and the tags as `tags` gives them. For a CRF the
        loss is the mean of the rows' negative log-likelihoods, whatever the batches; a softmax
        tagger's averages over each batch's words, so its batches (shortest rows first, where
        Keras's are bucketed) move it slightly."""
        if self._loss_and_tags is None:
            self._loss_and_tags = self._traced(features, with_loss=True)
        return self._run(features, targets)

    def _run(self, features: Any, targets: np.ndarray | None) -> tuple[Any, np.ndarray]:
        import numpy as np

        from kbuild.data.pipeline import length_sorted_batches
        from kbuild.layers.crf import PADDING_TAG
        from kbuild.tasks.tagging import word_positions

        shape = np.shape(word_positions(features))
        tags = np.full(shape, PADDING_TAG, np.int32)
        loss, rows_scored = 0.0, 0
        for rows, batch in length_sorted_batches(features, self.batch_size, self.trim):
            length = np.shape(word_positions(batch))[1]
            if targets is None:
                batch_tags = self._tags(batch)
            else:
                batch_loss, batch_tags = self._loss_and_tags(batch, targets[rows][:, :length])
                loss += float(batch_loss) * len(rows)
                rows_scored += len(rows)
            tags[rows, :length] = batch_tags.numpy()
        return (loss / rows_scored if rows_scored else 0.0), tags

    def _traced(self, features: Any, with_loss: bool) -> Any:
        """One tf.function for these features' structure, any batch and length."""
        import tensorflow as tf

        from kbuild.layers.crf import decode_tags
        from kbuild.tasks.sorted_predict import features_signature
        from kbuild.tasks.tagging import word_positions

        features_spec = features_signature(features)
        model_of = self._model

        def decode(batch: Any, outputs: Any) -> Any:
            return decode_tags(outputs, tf.not_equal(word_positions(batch), 0), self.num_tags, self.crf)

        if not with_loss:
            @tf.function(input_signature=[features_spec])
            def tags(batch):
                return decode(batch, model_of()(batch, training=False))

            return tags

        @tf.function(input_signature=[features_spec, tf.TensorSpec([None, None], tf.int32)])
        def loss_and_tags(batch, targets):
            model = model_of()
            outputs = model(batch, training=False)
            # Called outside any distribution scope (after training, or `kbuild evaluate`): the
            # loss is not scaled per replica.
            loss = model.compute_loss(x=batch, y=targets, y_pred=outputs, training=False)
            return loss, decode(batch, outputs)

        return loss_and_tags


def scorer_for(model: Any, spec: Spec, num_tags: int) -> TagScorer:
    """The `TagScorer` of `model`, made on the first call and kept while the model lives."""
    scorer = _SCORERS.get(model)
    if scorer is None:
        from kbuild.tasks.base import TASKS

        scorer = TagScorer(model, num_tags, crf=spec.model.head.type == "crf", trim=spec.preprocess.bucketing,
                           batch_size=TASKS.get(spec.task).scoring_batch_size(spec))
        _SCORERS[model] = scorer
    return scorer
