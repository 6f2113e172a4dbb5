"""Token embeddings with a position signal, and character-level word features."""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus a position signal; id 0 is padding and produces the mask.

    Args:
        vocab_size: int. Number of token ids.
        dim: int. Embedding size.
        max_length: int. Longest sequence (size of the learned position table).
        position: str, default "learned". "learned", "sine" or "none".
        token_trainable: bool, default True. False freezes the token table (pretrained vectors).
    """

    POSITIONS = ("learned", "sine", "none")

    def __init__(self, vocab_size, dim, max_length, position="learned", token_trainable=True, **kwargs):
        super().__init__(**kwargs)
        self.token_trainable = token_trainable
        if position not in self.POSITIONS:
            raise ValueError(f"Expected `position` in {self.POSITIONS}; received position={position!r}")
        self.vocab_size, self.dim, self.max_length, self.position = vocab_size, dim, max_length, position

    def build(self, input_shape):
        import keras_hub

        self.token = keras.layers.Embedding(self.vocab_size, self.dim, dtype=self.dtype_policy, name="token")
        self.token.build(input_shape)
        self.token.trainable = self.token_trainable
        self.positions = None
        if self.position == "learned":
            self.positions = keras_hub.layers.PositionEmbedding(self.max_length, dtype=self.dtype_policy, name="position")
        elif self.position == "sine":
            self.positions = keras_hub.layers.SinePositionEncoding(dtype=self.dtype_policy, name="position")
        if self.positions is not None:
            self.positions.build((*input_shape, self.dim))
        self.built = True

    def call(self, ids, start_index=0, reverse=False):
        """`start_index`: position of `ids[:, 0]` (generation embeds one new token at a time).
        `reverse=True` reads features `[..., dim]` back onto the vocabulary through the token
        table, float32 logits `[..., vocab_size]` (a decoder's tied output layer: Press and Wolf
        2017); called twice in one functional model, the table is one variable, saved once."""
        if reverse:
            table = ops.cast(self.token.embeddings, ids.dtype)
            return ops.cast(ops.matmul(ids, ops.transpose(table)), "float32")
        x = self.token(ids)
        if self.positions is not None:
            x = x + ops.cast(self.positions(x, start_index=start_index), x.dtype)
        return x

    def compute_mask(self, ids, mask=None):
        # Reversed, the input is float features: their time mask passes through.
        return mask if keras.backend.is_float_dtype(keras.backend.standardize_dtype(ids.dtype)) else ops.not_equal(ids, 0)

    def compute_output_spec(self, ids, start_index=0, reverse=False):
        if reverse:
            return keras.KerasTensor((*ids.shape[:-1], self.vocab_size), dtype="float32")
        return keras.KerasTensor((*ids.shape, self.dim), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
            "max_length": self.max_length, "position": self.position, "token_trainable": self.token_trainable,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegmentEmbedding(keras.layers.Layer):
    """Adds a learned vector per segment (which packed text a token belongs to) to the token
    embeddings, as BERT's token type embeddings do for sentence pairs.

    Input `[embeddings [batch, time, dim], segment ids int32 [batch, time]]`; output the sum, with
    the embeddings' padding mask kept.

    Args:
        segments: int. Number of segment ids (texts per example).
        dim: int. Embedding size (the token embeddings').
    """

    def __init__(self, segments, dim, **kwargs):
        super().__init__(**kwargs)
        self.segments, self.dim = segments, dim
        self.supports_masking = True

    def build(self, input_shape):
        self.table = keras.layers.Embedding(self.segments, self.dim, dtype=self.dtype_policy, name="segment")
        self.table.build(input_shape[1])
        self.built = True

    def call(self, inputs):
        x, segment_ids = inputs
        return x + ops.cast(self.table(ops.cast(segment_ids, "int32")), x.dtype)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "segments": self.segments, "dim": self.dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CharCNN(keras.layers.Layer):
    """Character-level word features: embed each word's characters, convolve, max-pool over them.

    Input int32 char ids `[batch, words, chars]` (0 = padding); output `[batch, words, filters]`,
    zeros for padding words. As in Ma & Hovy (2016): one convolution, tanh, max over characters.

    Args:
        buckets: int. Number of character ids.
        dim: int. Character embedding size.
        filters: int. Output size per word.
        kernel_size: int, default 3. Characters per convolution window.
        dropout: float, default 0. Dropout on the character embeddings.
        seed: int or None. Seeds the dropout.

    Examples:
    >>> CharCNN(64, 8, 16)(ops.ones((2, 5, 7), "int32")).shape
    (2, 5, 16)
    """

    def __init__(self, buckets, dim, filters, kernel_size=3, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.buckets, self.dim, self.filters = buckets, dim, filters
        self.kernel_size, self.dropout, self.seed = kernel_size, dropout, seed

    def build(self, input_shape):
        chars = input_shape[-1]
        self.embedding = keras.layers.Embedding(self.buckets, self.dim, dtype=self.dtype_policy, name="chars")
        self.embedding.build((None, chars))
        self.embedding_dropout = keras.layers.Dropout(self.dropout, seed=self.seed, dtype=self.dtype_policy)
        self.conv = keras.layers.Conv1D(self.filters, self.kernel_size, padding="same", activation="tanh",
                                        dtype=self.dtype_policy, name="conv")
        self.conv.build((None, chars, self.dim))
        self.built = True

    def call(self, char_ids, training=None):
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[-1]))  # one row per word
        x = self.embedding_dropout(self.embedding(flat), training=training)
        x = self.conv(x)
        real = ops.expand_dims(ops.not_equal(flat, 0), -1)
        lowest = ops.cast(-1e4, x.dtype)
        pooled = ops.max(ops.where(real, x, lowest), axis=1)
        # A padding word (no characters) gets zeros rather than -1e4.
        pooled = ops.where(ops.any(real, axis=1), pooled, ops.zeros_like(pooled))
        return ops.reshape(pooled, (shape[0], shape[1], self.filters))

    def compute_mask(self, inputs, mask=None):
        # A word with no characters is padding. Returning None here would let `Concatenate`
        # (which ORs its inputs' masks, a missing one counting as all true) unmask every padded
        # position of [word embedding; char features], and the encoder would read padding.
        return ops.any(ops.not_equal(inputs, 0), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "buckets": self.buckets, "dim": self.dim, "filters": self.filters,
            "kernel_size": self.kernel_size, "dropout": self.dropout, "seed": self.seed,
        }
