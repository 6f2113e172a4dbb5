"""tf.data pipelines: tokenise once, then shuffle, batch and prefetch from memory.

Tokenising the whole split up front in large batches (instead of per example inside `map`) costs
well under a second for SST-2, makes every epoch read from memory, and surfaces tokenizer problems
when the data is built rather than mid-training. Only prediction input streams through the
tokenizer (`encode_texts`), since it may be large and is read once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kbuild.data.tokenizers import PAD_ID, Tokenizer
from kbuild.names import TOKEN_IDS

ENCODE_BATCH = 4096
"""Texts per tokenizer call when encoding a split: large enough to amortise the call."""

Features = np.ndarray | dict[str, np.ndarray]
"""Encoded inputs: token ids `[count, max_length]`, or a dict of them and the other model inputs
(`char_ids`), as the tokenizer's `encode` returns them."""


def encode_all(
    tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = ENCODE_BATCH
) -> Features:
    """The tokenizer's encoding (int32 ids `[len(texts), max_length]`, or a dict of arrays) for a
    whole split."""
    return encode_columns(lambda columns: tokenizer.encode(columns["text"]), {"text": texts}, batch_size)


def encode_columns(
    encode: Callable[[dict[str, tf.Tensor]], Any], columns: Mapping[str, Sequence[str]],
    batch_size: int = ENCODE_BATCH,
) -> Features:
    """`encode` (strings `[batch]` by input name -> ids, or a dict of arrays) over whole columns
    of equal length, `batch_size` rows a call, concatenated."""
    count = len(next(iter(columns.values())))

    def call(start: int, stop: int):
        batch = {name: tf.constant(list(texts[start:stop]), tf.string, shape=[stop - start]) for name, texts in columns.items()}
        return tf.nest.map_structure(lambda t: t.numpy(), encode(batch))

    chunks = [call(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if not chunks:
        empty = {name: tf.constant([""], tf.string) for name in columns}
        return tf.nest.map_structure(lambda t: t.numpy()[:0], encode(empty))
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *chunks)


def _token_ids(features):
    """The token ids among a structure of features (they carry the padding)."""
    return features[TOKEN_IDS] if isinstance(features, dict) else features


def features_dataset(features: Features, batch_size: int) -> tf.data.Dataset:
    """Batches of encoded inputs alone, in order (for predictions)."""
    return tf.data.Dataset.from_tensor_slices(features).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def length_sorted_batches(features: Features, batch_size: int, trim: bool) -> Iterator[tuple[np.ndarray, Any]]:
    """`(rows, batch)` pairs covering every row once, shortest rows first: `rows` are the
    positions the batch holds, `batch` their features, each cut on its time axis to the smallest
    of `bucket_lengths` that holds the batch's longest row when `trim` (as bucketed training
    batches are), else whole. For one scoring pass that reads each row at about its own length;
    the caller puts the results back in row order."""
    token_ids = np.asarray(_token_ids(features))
    lengths = np.sum(token_ids != PAD_ID, axis=1)
    order = np.argsort(lengths, kind="stable")
    sizes = np.asarray(bucket_lengths(token_ids.shape[1]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        cut = int(sizes[np.searchsorted(sizes, max(1, int(lengths[rows].max())))]) if trim else token_ids.shape[1]
        yield rows, tf.nest.map_structure(lambda array, rows=rows, cut=cut: np.asarray(array)[rows][:, :cut], features)


def labelled_dataset(
    ids: Features,
    label_ids: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 20000,
    bucketing: bool = False,
    label_padding: int | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, label ids)`: ids int32 `[batch, length]` (or the dict `encode_all`
    gives), labels int32 `[batch]`, or `[batch, length]` for per-token labels.

    Args:
        ids: encoded texts, `[count, max_length]`, or a dict of model inputs.
        label_ids: one label id per row, or one per token (`[count, max_length]`).
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: reshuffle every epoch with `seed` (same seed, same order of orders).
        seed: seed of the shuffle.
        shuffle_buffer: shuffle window; the whole split when it is smaller.
        bucketing: group examples of similar length; each batch is then padded to the smallest
            of a few lengths (see `bucket_lengths`) that fits it, never beyond `max_length`.
        label_padding: for per-token labels (a time axis like the ids'), the id that pads them in
            a bucketed batch; `None` for per-example labels (a class id, a multi-hot vector).
    """
    # Label ids are int32; a task with numeric targets (regression) passes a float array as is.
    labels = label_ids if isinstance(label_ids, np.ndarray) and label_ids.dtype.kind == "f" else np.asarray(label_ids, np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels))
    if shuffle:
        buffer = max(1, min(shuffle_buffer, len(labels)))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if bucketing:
        token_ids = np.asarray(_token_ids(ids))

        def length(features, label):
            # Padding is only ever trailing, so the non-pad count is the length.
            return tf.reduce_sum(tf.cast(_token_ids(features) != PAD_ID, tf.int32))

        def cut(n, features, label):
            # Every feature and a per-token label share the time axis first: all cut at one place.
            return tf.nest.map_structure(lambda t: t[:n], features), (label if label_padding is None else label[:n])

        feature_spec, label_spec = dataset.element_spec
        padding = (tf.nest.map_structure(lambda spec: tf.constant(PAD_ID, spec.dtype), feature_spec),
                   tf.constant(label_padding or 0, label_spec.dtype))
        dataset = bucket_by_length(dataset, np.sum(token_ids != PAD_ID, axis=1), token_ids.shape[1], batch_size,
                                   length, cut, padding)
    else:
        dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(tf.data.AUTOTUNE)


def bucket_lengths(max_length: int) -> list[int]:
    """The padded lengths bucketing uses: 4, 6, 8, 12, 16, 24, ... (each power of two and the
    halfway step above it) below max_length, and max_length itself.

    Steps of 1.5x waste at most a third of a batch on padding; on SST-2 (median 7 tokens) they
    pad a row to 11.3 tokens on average, against 14.7 with the powers of two from 8 alone and 64
    without bucketing. Nine shapes for max_length 64: tf.function generalises after the first
    few, so only XLA compiles once per shape (the execution probe times that too).
    """
    lengths, power = {max_length}, 4
    while power < max_length:
        lengths.update(n for n in (power, power * 3 // 2) if n < max_length)
        power *= 2
    return sorted(lengths)


def bucketed_batches(lengths: np.ndarray, max_length: int, batch_size: int) -> int:
    """Batches in one bucketed pass over rows of these `lengths` (see `bucket_by_length`): per
    bucket, its rows in batches of `batch_size`, the last one partial."""
    rows = np.bincount(np.searchsorted(_bucket_boundaries(max_length), np.maximum(lengths, 1), side="right"))
    return int(sum(-(-int(n) // batch_size) for n in rows))


def _bucket_boundaries(max_length: int) -> list[int]:
    # Bucket i holds lengths < boundary i and is padded to boundary - 1 = bucket_lengths()[i].
    return [length + 1 for length in bucket_lengths(max_length)]


def bucket_by_length(dataset: tf.data.Dataset, lengths: np.ndarray, max_length: int, batch_size: int,
                     length_of: Callable[..., tf.Tensor], cut: Callable[..., Any], padding: Any) -> tf.data.Dataset:
    """Batches of rows of similar length, each padded to the smallest of `bucket_lengths` that fits it.

    Args:
        dataset: unbatched rows, padded to `max_length`.
        lengths: each row's length (to count the batches).
        length_of: a row's elements -> its length (int32 scalar, TF ops).
        cut: (length, *elements) -> the row's elements cut to that length on their time axis.
        padding: the value each element is padded with, in the row's structure.
    """
    boundaries = _bucket_boundaries(max_length)

    def trim(*row):
        return cut(tf.maximum(length_of(*row), 1), *row)

    trimmed = dataset.map(trim, num_parallel_calls=tf.data.AUTOTUNE)
    bucketed = trimmed.bucket_by_sequence_length(
        element_length_func=lambda *row: tf.maximum(length_of(*row), 1),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=tf.nest.map_structure(lambda spec: spec.shape, trimmed.element_spec),
        padding_values=padding,
        pad_to_bucket_boundary=True,
        drop_remainder=False,
    )
    # Its batch count is known (each bucket's rows in full batches and one partial): said so, a
    # scoring pass ends without Keras taking the end of an unknown-length dataset for a fault.
    return bucketed.apply(tf.data.experimental.assert_cardinality(bucketed_batches(lengths, max_length, batch_size)))


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], batch_size: int) -> tf.data.Dataset:
    """Batches of ids `[batch, max_length]` for unlabelled texts, in input order (prediction)."""
    dataset = tf.data.Dataset.from_tensor_slices(
        tf.constant(list(texts), tf.string, shape=[len(texts)])
    )
    dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.map(tokenizer.encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )
