"""Streaming metrics of kbuild's tasks (running sums over a whole split, not batch averages)."""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE
from kbuild.layers.crf import PADDING_TAG, decode_tags


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseMacroF1(keras.metrics.Metric):
    """Macro-averaged F1 from integer labels and class probabilities, over a running confusion matrix.

    Classes that never occur in labels or predictions are left out of the average (as sklearn does).
    With `positive`, the F1 of that class alone (a binary task's `f1`, as MRPC and QQP report it).
    """

    def __init__(self, num_classes, name="macro_f1", positive=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.positive = num_classes, positive
        self.confusion = self.add_variable((num_classes, num_classes), initializer="zeros", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), self.num_classes)
        pred = ops.one_hot(ops.argmax(ops.reshape(y_pred, (-1, self.num_classes)), axis=-1), self.num_classes)
        if sample_weight is not None:
            true = true * ops.reshape(ops.cast(sample_weight, true.dtype), (-1, 1))
        self.confusion.assign_add(ops.matmul(ops.transpose(true), pred))

    def result(self):
        tp = ops.diagonal(self.confusion)
        actual = ops.sum(self.confusion, axis=1)
        predicted = ops.sum(self.confusion, axis=0)
        f1 = 2 * tp / ops.maximum(actual + predicted, 1e-9)
        if self.positive is not None:
            return f1[self.positive]
        present = ops.cast((actual + predicted) > 0, f1.dtype)
        return ops.sum(f1 * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "positive": self.positive}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PearsonCorrelation(keras.metrics.Metric):
    """Pearson's r between targets and predictions, from running sums over the whole split."""

    def __init__(self, name="pearson", **kwargs):
        super().__init__(name=name, **kwargs)
        # n, sum x, sum y, sum xx, sum yy, sum xy
        self.sums = self.add_variable((6,), initializer="zeros", name="sums")

    def update_state(self, y_true, y_pred, sample_weight=None):
        x = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        self.sums.assign_add(ops.stack([
            ops.cast(ops.shape(x)[0], "float32"), ops.sum(x), ops.sum(y),
            ops.sum(x * x), ops.sum(y * y), ops.sum(x * y),
        ]))

    def result(self):
        n, sx, sy, sxx, syy, sxy = (self.sums[i] for i in range(6))
        covariance = n * sxy - sx * sy
        spread = ops.sqrt(ops.maximum(n * sxx - sx * sx, 0.0) * ops.maximum(n * syy - sy * sy, 0.0))
        return covariance / ops.maximum(spread, 1e-12)

    def reset_state(self):
        self.sums.assign(ops.zeros_like(self.sums))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiLabelF1(keras.metrics.Metric):
    """Micro- or macro-averaged F1 of multi-hot targets against sigmoid outputs cut at per-label
    thresholds. Macro leaves out labels absent from both targets and predictions (as sklearn does).

    Args:
        thresholds: list of float, one per label.
        average: "micro" or "macro".
    """

    def __init__(self, thresholds, average="micro", name="micro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        if average not in ("micro", "macro"):
            raise ValueError(f"Expected average in ('micro', 'macro'); received average={average!r}")
        self.thresholds, self.average = [float(t) for t in thresholds], average
        size = len(self.thresholds)
        # true positives, predicted positives, actual positives per label
        self.counts = self.add_variable((3, size), initializer="zeros", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.cast(y_true, "float32")
        predicted = ops.cast(ops.cast(y_pred, "float32") >= ops.convert_to_tensor(self.thresholds), "float32")
        self.counts.assign_add(ops.stack([
            ops.sum(true * predicted, axis=0), ops.sum(predicted, axis=0), ops.sum(true, axis=0),
        ]))

    def result(self):
        tp, predicted, actual = self.counts[0], self.counts[1], self.counts[2]
        if self.average == "micro":
            return 2 * ops.sum(tp) / ops.maximum(ops.sum(predicted) + ops.sum(actual), 1e-9)
        f1 = 2 * tp / ops.maximum(predicted + actual, 1e-9)
        present = ops.cast((predicted + actual) > 0, "float32")
        return ops.sum(f1 * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds, "average": self.average}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAccuracy(keras.metrics.Metric):
    """Share of real target tokens (`y_true != padding`) predicted right: the decoded tag of a
    tagger (Viterbi for a CRF), or the highest-scoring token of a decoder. Padding never counts
    (Keras's SparseCategoricalAccuracy would count every padded position as a guess).

    Args:
        crf: the predictions are a CRF layer's packed output (decode with Viterbi).
        padding: the target id of padding positions: -1 for tags, 0 for token ids.
    """

    def __init__(self, crf=False, padding=PADDING_TAG, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.crf, self.padding = crf, padding
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.not_equal(y_true, self.padding)
        predicted = decode_tags(y_pred, mask, y_pred.shape[-1], self.crf) if self.crf else ops.argmax(y_pred, axis=-1)
        real = ops.cast(mask, "float32")
        self.correct.assign_add(ops.sum(ops.cast(ops.equal(ops.cast(predicted, "int32"), y_true), "float32") * real))
        self.total.assign_add(ops.sum(real))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "crf": self.crf, "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedTokenAccuracy(TokenAccuracy):
    """`TokenAccuracy` over token ids (padding 0): the name runs saved before the merge refer to."""

    def __init__(self, name="token_accuracy", **kwargs):
        kwargs.pop("crf", None)
        kwargs.pop("padding", None)
        super().__init__(crf=False, padding=0, name=name, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightedTokenLoss(keras.metrics.Metric):
    """Cross-entropy in nats per weighted target token over the whole split: Σ w·CE / Σ w.

    Keras's own `loss` in the logs is a mean of batch means, so a batch of 3 reply tokens counts
    as much as one of 300; this is the split's exact token-weighted loss, which a chat run's final
    score is, so the saved epoch's validation can stand for it."""

    def __init__(self, name="token_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.weight = self.add_variable((), initializer="zeros", name="weight")

    def update_state(self, y_true, y_pred, sample_weight=None):
        losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        weights = ops.ones_like(losses) if sample_weight is None else ops.cast(sample_weight, losses.dtype)
        self.total.assign_add(ops.cast(ops.sum(losses * weights), self.total.dtype))
        self.weight.assign_add(ops.cast(ops.sum(weights), self.weight.dtype))

    def result(self):
        return self.total / ops.maximum(self.weight, 1e-9)

    def reset_state(self):
        self.total.assign(0.0)
        self.weight.assign(0.0)
