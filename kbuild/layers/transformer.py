"""The Transformer encoder layer of kbuild's `transformer_encoder` block."""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoder(keras.layers.Layer):
    """One Transformer encoder layer: self-attention and a feed-forward network, each residual.

    Args:
        heads: int. Number of attention heads.
        head_dim: int. Size of each head's query/key/value projections.
        ff_dim: int. Hidden size of the feed-forward network.
        dropout: float, default 0. Dropout on attention weights and on both residual branches.
        activation: str, default "relu". Feed-forward activation.
        norm_first: bool, default False. Pre-norm (normalise before each branch) instead of post-norm.
        norm_epsilon: float, default 1e-5.
        seed: int or None. Seeds every dropout, so training is reproducible.

    Examples:
    >>> x = keras.random.normal((2, 7, 16))
    >>> TransformerEncoder(heads=4, head_dim=4, ff_dim=32)(x).shape
    (2, 7, 16)
    """

    def __init__(self, heads, head_dim, ff_dim, dropout=0.0, activation="relu", norm_first=False,
                 norm_epsilon=1e-5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.head_dim, self.ff_dim = heads, head_dim, ff_dim
        self.dropout, self.activation, self.norm_first = dropout, activation, norm_first
        self.norm_epsilon, self.seed = norm_epsilon, seed
        self.supports_masking = True

    def build(self, input_shape):
        dim = input_shape[-1]
        seed = self.seed

        def _seed(offset):
            return None if seed is None else seed * 7 + offset

        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.heads, key_dim=self.head_dim, dropout=self.dropout, seed=_seed(1),
            dtype=self.dtype_policy, name="attention",
        )
        self.attention.build(input_shape, input_shape)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.norm_epsilon, dtype=self.dtype_policy, name="attention_norm")
        self.attention_norm.build(input_shape)
        self.attention_dropout = keras.layers.Dropout(self.dropout, seed=_seed(2), dtype=self.dtype_policy)
        self.ff_inner = keras.layers.Dense(self.ff_dim, activation=self.activation, dtype=self.dtype_policy, name="ff_inner")
        self.ff_inner.build(input_shape)
        self.ff_outer = keras.layers.Dense(dim, dtype=self.dtype_policy, name="ff_outer")
        self.ff_outer.build((*input_shape[:-1], self.ff_dim))
        self.ff_norm = keras.layers.LayerNormalization(epsilon=self.norm_epsilon, dtype=self.dtype_policy, name="ff_norm")
        self.ff_norm.build(input_shape)
        self.ff_dropout = keras.layers.Dropout(self.dropout, seed=_seed(3), dtype=self.dtype_policy)
        self.built = True

    def call(self, x, mask=None, training=None):
        attention_mask = None
        if mask is not None:
            # [batch, 1, keys]: every query may attend to every non-padding key.
            attention_mask = ops.expand_dims(ops.cast(mask, "bool"), axis=1)
        h = self.attention_norm(x) if self.norm_first else x
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = x + self.attention_dropout(h, training=training)
        if not self.norm_first:
            x = self.attention_norm(x)
        h = self.ff_norm(x) if self.norm_first else x
        h = self.ff_outer(self.ff_inner(h))
        x = x + self.ff_dropout(h, training=training)
        if not self.norm_first:
            x = self.ff_norm(x)
        return x

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads, "head_dim": self.head_dim, "ff_dim": self.ff_dim,
            "dropout": self.dropout, "activation": self.activation, "norm_first": self.norm_first,
            "norm_epsilon": self.norm_epsilon, "seed": self.seed,
        }
