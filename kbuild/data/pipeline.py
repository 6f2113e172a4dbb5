"""tf.data pipelines: tokenise once, then shuffle, batch and prefetch from memory.

Tokenising the whole split up front in large batches (instead of per example inside `map`) costs
well under a second for SST-2, makes every epoch read from memory, and surfaces tokenizer problems
when the data is built rather than mid-training. Only prediction input streams through the
tokenizer (`encode_texts`), since it may be large and is read once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kbuild.data.tokenizers import PAD_ID, Tokenizer

ENCODE_BATCH = 4096
"""Texts per tokenizer call when encoding a split: large enough to amortise the call."""


def encode_all(
    tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = ENCODE_BATCH
) -> np.ndarray:
    """int32 ids `[len(texts), max_length]` for a whole split."""
    chunks = [
        tokenizer.encode(tf.constant(list(texts[start : start + batch_size]), tf.string)).numpy()
        for start in range(0, len(texts), batch_size)
    ]
    if not chunks:
        return np.zeros((0, tokenizer.max_length), np.int32)
    return np.concatenate(chunks)


def labelled_dataset(
    ids: np.ndarray,
    label_ids: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 20000,
    bucketing: bool = False,
) -> tf.data.Dataset:
    """Batches of `(ids int32 [batch, length], label_id int32 [batch])`.

    Args:
        ids: encoded texts, `[count, max_length]`.
        label_ids: one label id per row.
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: reshuffle every epoch with `seed` (same seed, same order of orders).
        seed: seed of the shuffle.
        shuffle_buffer: shuffle window; the whole split when it is smaller.
        bucketing: group examples of similar length; each batch is then padded to the smallest
            of a few lengths (see `bucket_lengths`) that fits it, never beyond `max_length`.
    """
    labels = np.asarray(label_ids, np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels))
    if shuffle:
        buffer = max(1, min(shuffle_buffer, len(labels)))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if bucketing:
        dataset = _bucket(dataset, ids.shape[1], batch_size)
    else:
        dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(tf.data.AUTOTUNE)


def bucket_lengths(max_length: int) -> list[int]:
    """The padded lengths bucketing uses: max_length / 8, / 4, / 2 and max_length itself (those of
    at least 8). Few distinct shapes keep retracing (and XLA recompiles) to a handful."""
    lengths = {max_length // d for d in (8, 4, 2) if max_length // d >= 8}
    return sorted(lengths | {max_length})


def _bucket(dataset: tf.data.Dataset, max_length: int, batch_size: int) -> tf.data.Dataset:
    lengths = bucket_lengths(max_length)

    def trim(ids: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # Padding is only ever trailing, so the non-pad count is the length.
        length = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32))
        return ids[: tf.maximum(length, 1)], label

    return dataset.map(trim, num_parallel_calls=tf.data.AUTOTUNE).bucket_by_sequence_length(
        element_length_func=lambda ids, label: tf.shape(ids)[0],
        # Bucket i holds lengths < boundary i and is padded to boundary - 1 = lengths[i].
        bucket_boundaries=[length + 1 for length in lengths],
        bucket_batch_sizes=[batch_size] * (len(lengths) + 1),
        padded_shapes=([None], []),
        padding_values=(tf.constant(PAD_ID, tf.int32), tf.constant(0, tf.int32)),
        pad_to_bucket_boundary=True,
        drop_remainder=False,
    )


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], batch_size: int) -> tf.data.Dataset:
    """Batches of ids `[batch, max_length]` for unlabelled texts, in input order (prediction)."""
    dataset = tf.data.Dataset.from_tensor_slices(
        tf.constant(list(texts), tf.string, shape=[len(texts)])
    )
    dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.map(tokenizer.encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )
