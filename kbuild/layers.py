"""Keras layers that kbuild's blocks compose. Backend-neutral: keras.layers and keras.ops only.

Each layer implements `get_config` and is registered as serializable, so a trained `model.keras`
reloads with `safe_mode=True` once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "kbuild"


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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

    def call(self, ids, start_index=0):
        """`start_index`: position of `ids[:, 0]` (generation embeds one new token at a time)."""
        x = self.token(ids)
        if self.positions is not None:
            x = x + ops.cast(self.positions(x, start_index=start_index), x.dtype)
        return x

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def get_config(self):
        return {
            **super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
            "max_length": self.max_length, "position": self.position, "token_trainable": self.token_trainable,
        }


def _float_mask(mask, x):
    """[batch, time] mask -> [batch, time, 1] in x's dtype (all ones when there is no mask)."""
    if mask is None:
        return ops.ones_like(x[..., :1])
    return ops.expand_dims(ops.cast(mask, x.dtype), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseMacroF1(keras.metrics.Metric):
    """Macro-averaged F1 from integer labels and class probabilities, over a running confusion matrix.

    Classes that never occur in labels or predictions are left out of the average (as sklearn does).
    """

    def __init__(self, num_classes, name="macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
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
        present = ops.cast((actual + predicted) > 0, f1.dtype)
        return ops.sum(f1 * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "buckets": self.buckets, "dim": self.dim, "filters": self.filters,
            "kernel_size": self.kernel_size, "dropout": self.dropout, "seed": self.seed,
        }


# The CRF, bigram and text-CNN layers live in their own modules; importing them here registers them wherever kbuild's
# layers are registered (loading model.keras imports this module).
from kbuild import bigrams, crf, text_cnn  # noqa: E402, F401


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of target tokens (id != 0) whose highest-scoring prediction is right; padding never
    counts (Keras's SparseCategoricalAccuracy would count every padded position as a guess)."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        real = ops.cast(ops.not_equal(y_true, 0), "float32")
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        self.correct.assign_add(ops.sum(hits * real))
        self.total.assign_add(ops.sum(real))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
