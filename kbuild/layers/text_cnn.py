"""Kim (2014)'s text CNN as one Keras layer: parallel 1-D convolutions of several widths over a
padded sequence. Backend-neutral (keras.layers and keras.ops only) and serialisable.

The layer returns per-position features and keeps the padding mask; max-over-time pooling is the
model's masked `max` pooling (`kbuild.layers.MaskedPooling`), so padding can never win the max and
the layer composes with every task like any other block (see `kbuild.blocks.cnn`).
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextCNN(keras.layers.Layer):
    """Parallel `Conv1D`s of each width in `widths`, `filters` each, ReLU, concatenated.

    Input `[batch, time, dim]` with its padding mask; output `[batch, time, filters * len(widths)]`
    with the same mask. Padded positions are zeroed before convolving, and the convolutions pad with
    zeros ("same"), so a real position's output is the same however much padding follows it.

    Args:
        filters: int. Feature maps per width.
        widths: tuple of int, default (3, 4, 5). Window sizes (tokens per convolution).
        dropout: float, default 0. Dropout on the output features (before pooling).
        seed: int or None. Seeds the dropout.

    Examples:
    >>> TextCNN(4, (2, 3))(ops.ones((2, 7, 5))).shape
    (2, 7, 8)
    """

    def __init__(self, filters, widths=(3, 4, 5), dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not widths:
            raise ValueError(f"Expected at least one convolution width; received widths={widths!r}")
        self.filters, self.widths, self.dropout, self.seed = filters, tuple(widths), dropout, seed
        self.supports_masking = True

    def build(self, input_shape):
        self.convs = [
            keras.layers.Conv1D(self.filters, width, padding="same", activation="relu",
                                dtype=self.dtype_policy, name=f"conv{width}")
            for width in self.widths
        ]
        for conv in self.convs:
            conv.build(input_shape)
        self.output_dropout = keras.layers.Dropout(self.dropout, seed=self.seed, dtype=self.dtype_policy)
        self.built = True

    def call(self, x, mask=None, training=None):
        if mask is not None:
            x = x * ops.expand_dims(ops.cast(mask, x.dtype), -1)
        features = [conv(x) for conv in self.convs]
        features = features[0] if len(features) == 1 else ops.concatenate(features, axis=-1)
        return self.output_dropout(features, training=training)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters * len(self.widths))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "widths": list(self.widths),
                "dropout": self.dropout, "seed": self.seed}
