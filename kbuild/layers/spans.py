"""Answer spans over token features: start/end logits and their loss (extractive QA)."""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE

MASKED_LOGIT = -1e9
"""The logit of a padding position: never a start or an end, whatever the scores elsewhere."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpanLogits(keras.layers.Layer):
    """[batch, time, dim] -> float32 logits [batch, time, 2]: where the answer starts (`[..., 0]`)
    and ends (`[..., 1]`); padding positions (the features' Keras mask) get `MASKED_LOGIT`.

    Examples:
        >>> SpanLogits()(keras.ops.ones((1, 5, 8))).shape
        (1, 5, 2)
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2, dtype="float32", name="span")
        self.supports_masking = True

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x, mask=None):
        logits = self.dense(ops.cast(x, "float32"))
        if mask is None:
            return logits
        return ops.where(ops.expand_dims(ops.cast(mask, "bool"), -1), logits, MASKED_LOGIT)

    def compute_mask(self, inputs, mask=None):
        # The loss reads one (start, end) pair per window: no per-position mask may weight it.
        return None

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpanLoss(keras.losses.Loss):
    """The mean of the start and end cross-entropies: `y_true` int [batch, 2] positions (0, 0 =
    `[CLS]`, no answer in the window), `y_pred` the `SpanLogits` [batch, time, 2]."""

    def __init__(self, name="span_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        start = keras.losses.sparse_categorical_crossentropy(y_true[:, 0], y_pred[:, :, 0], from_logits=True)
        end = keras.losses.sparse_categorical_crossentropy(y_true[:, 1], y_pred[:, :, 1], from_logits=True)
        return (start + end) / 2
