"""Token-bigram features: an embedding of each token paired with its right neighbour.

For Chinese NER over characters, the bigram of a character and the next one is the standard cheap
substitute for word segmentation (Zhang & Yang 2018's character baseline; Ma et al. 2020): `中国`
and `中学` start with the same character but mean different things. The bigram id is a hash of the two
token ids computed inside the graph, so it needs no second vocabulary, no asset and no change to
tokenisation, export or serving, and works over any tokenizer's ids. Backend-neutral (keras.ops).
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class BigramEmbedding(keras.layers.Layer):
    """Token ids `[batch, time]` (0 = padding) -> `[batch, time, dim]` embeddings of
    (token t, token t+1), zeros at padding positions.

    The pair's id is `(a * vocab_size + b) mod (buckets - 1) + 1` (exact, before the modulo, for
    vocabularies up to 46,340 ids, where the product fits int32); the last token of a sentence pairs
    with padding, so "ends the sentence" is a bigram of its own. Distinct pairs can share a bucket:
    size `buckets` well above the number of distinct bigrams in train.

    Args:
        vocab_size: int. Number of token ids.
        buckets: int. Rows of the bigram table (row 0 is padding).
        dim: int. Bigram embedding size.

    Examples:
    >>> BigramEmbedding(10, 64, 4)(ops.convert_to_tensor([[3, 5, 0]])).shape
    (1, 3, 4)
    """

    def __init__(self, vocab_size, buckets, dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.buckets, self.dim = vocab_size, buckets, dim

    def build(self, input_shape):
        self.table = keras.layers.Embedding(self.buckets, self.dim, dtype=self.dtype_policy, name="bigrams")
        self.table.build(input_shape)
        self.built = True

    def bigram_ids(self, ids):
        """int32 bigram ids `[batch, time]`, 0 where `ids` is padding."""
        ids = ops.cast(ids, "int32")
        following = ops.pad(ids[:, 1:], [[0, 0], [0, 1]])
        pair = ids * self.vocab_size + following
        hashed = ops.mod(pair, self.buckets - 1) + 1
        return ops.where(ops.not_equal(ids, 0), hashed, ops.zeros_like(hashed))

    def call(self, ids):
        ids_of_pairs = self.bigram_ids(ids)
        vectors = self.table(ids_of_pairs)
        return vectors * ops.expand_dims(ops.cast(ops.not_equal(ids_of_pairs, 0), vectors.dtype), -1)

    def compute_mask(self, inputs, mask=None):
        # The token padding mask, not None: Keras's Concatenate ORs its inputs' masks and reads a
        # missing one as all True, which would unmask the padding of the token embedding beside it.
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "buckets": self.buckets, "dim": self.dim}


def add_bigram_features(x, ids, vocab_size: int, buckets: int, dim: int):
    """Concatenate each token's bigram embedding to its features `x` (x's padding mask kept)."""
    bigrams = BigramEmbedding(vocab_size, buckets, dim, name="bigram_embedding")(ids)
    return keras.layers.Concatenate(name="tokens_and_bigrams")([x, bigrams])
