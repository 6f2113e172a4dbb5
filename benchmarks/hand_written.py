"""The SST-2 architectures written by hand in Keras, as a user would from the keras-io examples:
what benchmarks/overhead.py and benchmarks/time_to_accuracy.py hold kbuild's compiled specs
against (same sizes as specs/sst2_transformer.yaml and specs/sst2_bilstm.yaml)."""

from __future__ import annotations

import keras
import keras_hub


def transformer_classifier(vocab_size: int, max_length: int, num_labels: int, length: int | None = None,
                           dtype: str = "int32") -> keras.Model:
    """The keras-io text-classification Transformer, with padding masks: 2 blocks, dim 128,
    4 heads, ff 256, learned positions, mean pooling, dense 64."""
    dim, heads, ff_dim, rate = 128, 4, 256, 0.1
    ids = keras.Input(shape=(length,), dtype=dtype)
    x = keras_hub.layers.TokenAndPositionEmbedding(vocab_size, max_length, dim, mask_zero=True)(ids)
    for _ in range(2):
        attention = keras.layers.MultiHeadAttention(heads, dim // heads, dropout=rate)(x, x)
        x = keras.layers.LayerNormalization(epsilon=1e-5)(x + keras.layers.Dropout(rate)(attention))
        ff = keras.layers.Dense(dim)(keras.layers.Dense(ff_dim, activation="relu")(x))
        x = keras.layers.LayerNormalization(epsilon=1e-5)(x + keras.layers.Dropout(rate)(ff))
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(rate)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(rate)(x)
    return keras.Model(ids, keras.layers.Dense(num_labels, activation="softmax")(x))


def bilstm_classifier(vocab_size: int, num_labels: int, length: int | None = None, dtype: str = "int32") -> keras.Model:
    """Embedding(128, mask_zero) -> BiLSTM(64) over the sequence -> max pooling -> softmax."""
    ids = keras.Input(shape=(length,), dtype=dtype)
    x = keras.layers.Embedding(vocab_size, 128, mask_zero=True)(ids)
    x = keras.layers.Dropout(0.2)(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(ids, keras.layers.Dense(num_labels, activation="softmax")(x))
