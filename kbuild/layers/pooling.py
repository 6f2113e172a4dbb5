"""Reductions over time that respect the padding mask, and the per-word gather of a subword tagger."""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE
from kbuild.layers.base import float_mask as _float_mask


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedPooling(keras.layers.Layer):
    """[batch, time, dim] -> [batch, dim] that ignores padding positions.

    Args:
        mode: str. "mean", "max", "sum", "last" (last non-padding position; right padding assumed)
            or "cls" (first position).
    """

    MODES = ("mean", "max", "sum", "last", "cls")

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Expected `mode` in {self.MODES}; received mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        m = _float_mask(mask, x)
        if self.mode == "cls":
            return x[:, 0, :]
        if self.mode == "sum":
            return ops.sum(x * m, axis=1)
        if self.mode == "mean":
            return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        if self.mode == "max":
            lowest = ops.cast(-1e4 if x.dtype == "float16" else -1e9, x.dtype)
            pooled = ops.max(ops.where(m > 0, x, lowest), axis=1)
            # An all-padding row has no maximum: give zeros rather than -1e9.
            return ops.where(ops.sum(m, axis=1) > 0, pooled, ops.zeros_like(pooled))
        # last
        last = ops.maximum(ops.cast(ops.sum(m[..., 0], axis=1), "int32") - 1, 0)
        index = ops.expand_dims(ops.expand_dims(last, -1), -1)
        return ops.squeeze(ops.take_along_axis(x, index, axis=1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(keras.layers.Layer):
    """Learned attention pooling: softmax over per-position scores, padding excluded.

    `return_attention=True` also returns the [batch, time] weights (which words drove the output).
    """

    def __init__(self, return_attention=False, **kwargs):
        super().__init__(**kwargs)
        self.return_attention = return_attention
        self.supports_masking = True

    def build(self, input_shape):
        self.score = keras.layers.Dense(1, dtype=self.dtype_policy, name="score")
        self.score.build(input_shape)
        self.built = True

    def call(self, x, mask=None):
        scores = ops.squeeze(self.score(x), axis=-1)
        if mask is not None:
            scores = ops.where(ops.cast(mask, "bool"), scores, ops.cast(-1e4, scores.dtype))
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        pooled = ops.sum(x * ops.cast(ops.expand_dims(weights, -1), x.dtype), axis=1)
        return (pooled, weights) if self.return_attention else pooled

    def compute_mask(self, inputs, mask=None):
        return None if not self.return_attention else [None, None]

    def compute_output_shape(self, input_shape):
        pooled = (input_shape[0], input_shape[-1])
        return (pooled, input_shape[:2]) if self.return_attention else pooled

    def get_config(self):
        return {**super().get_config(), "return_attention": self.return_attention}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FirstSubtoken(keras.layers.Layer):
    """`[sub-token features [batch, time, dim], word_starts [batch, words]]` -> each word's first
    sub-token's features `[batch, words, dim]`, masked where `word_starts` is 0 (no word: position 0
    holds `[CLS]`). This is how a tagger over subwords labels words (Devlin et al. 2019, sec. 5.3).

    Examples:
    >>> x = keras.ops.reshape(keras.ops.arange(12.0), (1, 6, 2))
    >>> keras.ops.convert_to_numpy(FirstSubtoken()([x, keras.ops.convert_to_tensor([[1, 4, 0]])]))[0, :, 0].tolist()
    [2.0, 8.0, 0.0]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        # One gather of rows from the flattened [batch * time, dim] features: under TensorFlow,
        # `take_along_axis` builds a full [batch, words, dim] index and took 22.5 ms (forward and
        # backward) against 3.8 ms for this, at CoNLL's batch 32 x 200 sub-tokens x 200 features.
        x, starts = inputs
        batch, time, dim = ops.shape(x)[0], ops.shape(x)[1], x.shape[-1]  # static dim: Dense needs it
        rows = ops.arange(batch)[:, None] * time + ops.cast(starts, "int32")
        words = ops.take(ops.reshape(x, (-1, dim)), ops.reshape(rows, (-1,)), axis=0)
        return ops.reshape(words, (batch, ops.shape(starts)[1], dim))

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, input_shape):
        features, starts = input_shape
        return (*starts, features[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropMask(keras.layers.Layer):
    """Passes its input through without Keras's implicit mask, for tensors whose padding is given
    explicitly downstream (a mask carried as well makes keras_hub warn and ignore one of them)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        # A new tensor: eager tensors carry their mask as an attribute, which `x` itself keeps.
        return ops.copy(x)

    def compute_mask(self, inputs, mask=None):
        return None
