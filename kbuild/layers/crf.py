"""Linear-chain CRF for taggers, in keras.ops only (runs under TensorFlow and JAX alike).

Functions:
    crf_log_likelihood: log p(tags | emissions) by the forward algorithm (the training loss).
    viterbi_decode: the most likely tag sequence and its score (decoding).

Layers and objects (registered, so model.keras reloads with safe_mode=True):
    CRF: the output layer; holds the transition scores.
    CRFLoss: negative log-likelihood, the loss of a model ending in `CRF`.
    TagDecoder: outputs -> tag ids (Viterbi for a CRF, argmax for softmax), -1 on padding.

Keras losses see only `(y_true, y_pred)`, so the CRF layer's output carries its own parameters:
`[emissions; transitions; start; end]` stacked on the time axis, `[batch, time + tags + 2, tags]`.
`unpack` splits it again. This keeps the loss a plain serialisable function and the model an
ordinary functional model, at the cost of a few rows of output per example.

Tag ids are labels `>= 0`; padding positions carry -1 in `y_true` and are masked everywhere.
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE

PADDING_TAG = -1


def unpack(packed, num_tags: int):
    """CRF output -> (emissions [batch, time, tags], transitions [tags, tags], start [tags], end [tags])."""
    emissions = packed[:, : -(num_tags + 2)]
    parameters = packed[0, -(num_tags + 2) :]
    return emissions, parameters[:num_tags], parameters[num_tags], parameters[num_tags + 1]


def _time_major(emissions, mask):
    """[batch, time, tags] emissions and [batch, time] mask -> one float tensor to scan over,
    `[time, batch, tags + 2]`: each step's emissions, its mask and its position.

    One tensor rather than a tuple: Keras' TensorFlow `scan` checks a tuple's leading dimensions
    against each other and fails when the time length is unknown while tracing.
    """
    batch, steps = ops.shape(emissions)[0], ops.shape(emissions)[1]
    positions = ops.broadcast_to(ops.expand_dims(ops.arange(steps, dtype="float32"), 0), (batch, steps))
    packed = ops.concatenate(
        [emissions, ops.expand_dims(ops.cast(mask, "float32"), -1), ops.expand_dims(positions, -1)], axis=-1
    )
    return ops.transpose(packed, (1, 0, 2))


def _step(x):
    """One scanned step -> (emissions [batch, tags], mask [batch] bool, is-first-position scalar)."""
    return x[:, :-2], x[:, -2] > 0.5, x[0, -1] < 0.5


def crf_log_likelihood(emissions, tags, mask, transitions, start, end):
    """log p(tags | emissions) per sequence, `[batch]`.

    Args:
        emissions: float `[batch, time, tags]` per-position tag scores.
        tags: int `[batch, time]` gold tag ids (any value where `mask` is false).
        mask: bool `[batch, time]`, true on real tokens; padding only at the end of a row.
        transitions: `[tags, tags]`, score of moving from tag i to tag j.
        start, end: `[tags]`, scores of starting and ending a sequence with each tag.

    A row with no tokens has log-likelihood 0.
    """
    emissions = ops.cast(emissions, "float32")
    num_tags = ops.shape(emissions)[-1]
    m = ops.cast(mask, "float32")
    tags = ops.where(ops.cast(mask, "bool"), ops.cast(tags, "int32"), 0)
    lengths = ops.cast(ops.sum(m, axis=1), "int32")
    has_tokens = ops.cast(lengths > 0, "float32")

    emitted = ops.squeeze(ops.take_along_axis(emissions, ops.expand_dims(tags, -1), axis=-1), -1)
    pairs = tags[:, :-1] * num_tags + tags[:, 1:]
    moved = ops.take(ops.reshape(transitions, (-1,)), pairs)
    last = ops.squeeze(ops.take_along_axis(tags, ops.expand_dims(ops.maximum(lengths - 1, 0), -1), axis=1), -1)
    gold = (
        ops.sum(emitted * m, axis=1)
        + ops.sum(moved * m[:, 1:], axis=1)
        + (ops.take(start, tags[:, 0]) + ops.take(end, last)) * has_tokens
    )

    def forward(alpha, step):
        emission, real, first = _step(step)
        moved_in = ops.logsumexp(ops.expand_dims(alpha, 2) + transitions, axis=1) + emission
        new = ops.where(first, start + emission, moved_in)
        alpha = ops.where(ops.expand_dims(real, -1), new, alpha)
        # The TensorFlow backend's scan stacks outputs shaped like the carry.
        return alpha, alpha

    alpha, _ = ops.scan(forward, ops.zeros_like(emissions[:, 0]), _time_major(emissions, mask))
    log_partition = ops.logsumexp(alpha + end, axis=1) * has_tokens
    return gold - log_partition


def viterbi_decode(emissions, mask, transitions, start, end):
    """The best tag sequence per row: (tags int32 `[batch, time]`, score float `[batch]`).

    Arguments as for `crf_log_likelihood`. Positions past a row's length repeat its last tag;
    callers mask them out (see `TagDecoder`).
    """
    emissions = ops.cast(emissions, "float32")
    num_tags = ops.shape(emissions)[-1]
    identity = ops.expand_dims(ops.arange(num_tags, dtype="int32"), 0)

    def forward(carry, step):
        score, _ = carry
        emission, real, first = _step(step)
        candidates = ops.expand_dims(score, 2) + transitions  # [batch, from, to]
        best_previous = ops.cast(ops.argmax(candidates, axis=1), "int32")
        new = ops.where(first, start + emission, ops.max(candidates, axis=1) + emission)
        keep = ops.logical_and(ops.expand_dims(real, -1), ops.logical_not(first))
        pointers = ops.where(keep, best_previous, identity)
        carry = (ops.where(ops.expand_dims(real, -1), new, score), pointers)
        # The TensorFlow backend's scan stacks outputs shaped like the carry: carry both.
        return carry, carry

    start_carry = (ops.zeros_like(emissions[:, 0]), ops.zeros_like(emissions[:, 0], dtype="int32"))
    (score, _), (_, pointers) = ops.scan(forward, start_carry, _time_major(emissions, mask))
    final = score + end
    last_tag = ops.cast(ops.argmax(final, axis=-1), "int32")

    def backward(tag, step_pointers):
        previous = ops.squeeze(ops.take_along_axis(step_pointers, ops.expand_dims(tag, -1), axis=1), -1)
        return previous, tag

    _, path = ops.scan(backward, last_tag, pointers, reverse=True)
    return ops.transpose(path, (1, 0)), ops.max(final, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CRF(keras.layers.Layer):
    """Linear-chain CRF output layer: emissions `[batch, time, tags]` -> packed output (see module).

    Args:
        num_tags: int. Number of tags.

    Examples:
    >>> crf = CRF(3)
    >>> packed = crf(keras.random.normal((2, 5, 3)))       # [2, 5 + 3 + 2, 3]
    >>> tags, score = viterbi_decode(*unpack(packed, 3)[:1], ops.ones((2, 5), "bool"), *unpack(packed, 3)[1:])
    """

    def __init__(self, num_tags, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = num_tags

    def build(self, input_shape):
        k = self.num_tags
        self.transitions = self.add_weight((k, k), initializer="zeros", name="transitions")
        self.start = self.add_weight((k,), initializer="zeros", name="start")
        self.end = self.add_weight((k,), initializer="zeros", name="end")
        self.built = True

    def call(self, emissions):
        emissions = ops.cast(emissions, "float32")
        batch = ops.shape(emissions)[0]
        parameters = ops.concatenate(
            [self.transitions, ops.expand_dims(self.start, 0), ops.expand_dims(self.end, 0)], axis=0
        )
        parameters = ops.broadcast_to(ops.expand_dims(ops.cast(parameters, "float32"), 0), (batch, self.num_tags + 2, self.num_tags))
        return ops.concatenate([emissions, parameters], axis=1)

    def compute_mask(self, inputs, mask=None):
        # The loss masks padding from y_true (-1) and decoding from the token ids.
        return None

    def compute_output_shape(self, input_shape):
        time = None if input_shape[1] is None else input_shape[1] + self.num_tags + 2
        return (input_shape[0], time, self.num_tags)

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CRFLoss(keras.losses.Loss):
    """Negative log-likelihood of the gold tags under a `CRF` output; -1 tags are padding."""

    def __init__(self, name="crf_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        emissions, transitions, start, end = unpack(y_pred, y_pred.shape[-1])
        return -crf_log_likelihood(emissions, y_true, y_true != PADDING_TAG, transitions, start, end)


def decode_tags(outputs, mask, num_tags: int, crf: bool, argmax_only: bool = False):
    """Model outputs -> int32 tag ids `[batch, time]`, -1 where `mask` is false.

    `crf`: the outputs are a `CRF`'s packed output; decoded by Viterbi unless `argmax_only`, which
    takes each position's best emission (the baseline the CRF's decoding speed is measured against).
    """
    if crf:
        emissions, transitions, start, end = unpack(outputs, num_tags)
        if argmax_only:
            tags = ops.cast(ops.argmax(emissions, axis=-1), "int32")
        else:
            tags, _ = viterbi_decode(emissions, mask, transitions, start, end)
    else:
        tags = ops.cast(ops.argmax(outputs, axis=-1), "int32")
    return ops.where(ops.cast(mask, "bool"), tags, PADDING_TAG)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TagDecoder(keras.layers.Layer):
    """(model outputs, token ids or word starts) -> int32 tag ids `[batch, time]`, -1 on padding (id 0).

    Args:
        num_tags: int.
        crf: bool, default False. Outputs come from a `CRF` layer (Viterbi) rather than a softmax.
        argmax_only: bool, default False. With `crf`, skip Viterbi (for speed comparisons).
    """

    def __init__(self, num_tags, crf=False, argmax_only=False, **kwargs):
        super().__init__(**kwargs)
        self.num_tags, self.crf, self.argmax_only = num_tags, crf, argmax_only
        # Padding is read from the token ids (and marked -1 in the output), so an incoming Keras
        # mask carries nothing new; accepting it keeps Keras from warning that it is dropped.
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, outputs, token_ids):
        return decode_tags(outputs, ops.not_equal(token_ids, 0), self.num_tags, self.crf, self.argmax_only)

    def compute_output_shape(self, outputs_shape, token_ids_shape):
        return tuple(token_ids_shape)

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags, "crf": self.crf, "argmax_only": self.argmax_only}
