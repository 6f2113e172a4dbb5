"""The two small layers between kbuild's `token_ids` input and a keras_hub backbone.

kbuild's pipeline and exports feed one int32 `token_ids` tensor, 0 = padding; keras_hub's encoders
take a dict (`token_ids`, `padding_mask`, and `segment_ids` for BERT). `BackboneInputs` derives
that dict inside the model, so datasets, bucketing, serving and TFLite stay as they are for every
task; `MaskedFeatures` gives the encoder's per-token output the padding mask as a Keras mask, which
kbuild's pooling and heads read. Both are registered for `safe_mode` loading.
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class BackboneInputs(keras.layers.Layer):
    """token ids `[batch, time]` (0 = padding), or `[token ids, segment ids]` for packed texts ->
    the backbone's input dict: the ids, a `padding_mask` (1 = token) and, when the backbone reads
    them, the `segment_ids` (all zero for one text).

    Args:
        names: the backbone's input names (a subset of token_ids, padding_mask, segment_ids).
    """

    KNOWN = ("token_ids", "padding_mask", "segment_ids")

    def __init__(self, names: tuple[str, ...] | list[str], **kwargs):
        super().__init__(**kwargs)
        unknown = sorted(set(names) - set(self.KNOWN))
        if unknown:
            raise ValueError(f"Expected backbone inputs among {', '.join(self.KNOWN)}; received {', '.join(unknown)}")
        self.names = tuple(names)

    def call(self, inputs):
        ids, segments = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        ids = ops.cast(ids, "int32")
        made = {"token_ids": ids, "padding_mask": ops.cast(ops.not_equal(ids, 0), "int32"),
                "segment_ids": ops.zeros_like(ids) if segments is None else ops.cast(segments, "int32")}
        return {name: made[name] for name in self.names}

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else input_shape
        return {name: tuple(shape) for name in self.names}

    def get_config(self):
        return {**super().get_config(), "names": list(self.names)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedFeatures(keras.layers.Layer):
    """`[features [batch, time, dim], token ids [batch, time]]` -> the features, unchanged, with
    the ids' padding (id 0) as their Keras mask, so mean/max/cls pooling skip the padding."""

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
