"""Contiguous windows over a token stream: the examples of a language model.

A split's texts are tokenised once into one stream (the language-model task ends each line with
a line break, so a tokenizer with `newlines: true` marks where lines ended). Training windows start at random
offsets, as nanoGPT samples them, so every epoch sees different cuts of the text; valid and test
windows tile the stream in order, each token predicted exactly once, so their loss is the
stream's average loss per token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kbuild.data.tokenizers import PAD_ID, Tokenizer
from kbuild.errors import DataError

_ENCODE_BATCH = 4096


def token_stream(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """int32 ids `[tokens]`: the texts' tokens, concatenated in order."""
    chunks = []
    for start in range(0, len(texts), _ENCODE_BATCH):
        batch = list(texts[start : start + _ENCODE_BATCH])
        chunks.append(tokenizer.token_ids(tf.constant(batch, tf.string)).flat_values.numpy())
    return np.concatenate(chunks).astype(np.int32) if chunks else np.zeros((0,), np.int32)


def window_count(stream: np.ndarray, length: int, source: str = "data") -> int:
    """Windows in one pass over `stream`: `ceil((tokens - 1) / length)`.

    Raises:
        DataError: fewer than two tokens (nothing to predict), naming `source`.
    """
    if len(stream) < 2:
        raise DataError(f"the text has {len(stream)} token(s); a language model needs at least 2", source)
    return -(-(len(stream) - 1) // length)


def plain_windows(inputs: tf.Tensor, targets: tf.Tensor, inputs_real: tf.Tensor, targets_real: tf.Tensor) -> tuple:
    """A window as kbuild's own language models read it: `(inputs, targets)` (a [PAD] target
    carries no loss)."""
    return inputs, targets


def window_dataset(
    stream: np.ndarray,
    length: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    pad_id: int = PAD_ID,
    pack: Callable[..., Any] = plain_windows,
) -> tf.data.Dataset:
    """Batches of windows, by default `(inputs [batch, length], targets [batch, length])`, targets
    being the inputs shifted one token left; one pass holds `window_count` windows.

    Args:
        stream: the split's token ids (at least 2; see `window_count`).
        length: tokens per window (the model's context).
        batch_size: windows per batch; the last batch of an ordered pass may be smaller.
        shuffle: random window offsets, fresh every pass (training); else ordered tiling.
        seed: seed of the offsets.
        pad_id: the id that fills the tail of the last tiled window.
        pack: `(inputs, targets, inputs_real, targets_real)` -> one dataset element, the two
            boolean masks marking the positions that hold text (False only in that tail); e.g. a
            checkpoint's causal LM reads a padding mask and weights its targets.
    """
    count = window_count(stream, length)
    if not shuffle or len(stream) <= length + 1:
        # Pad the tail: its positions are marked as no text for `pack`.
        padded = np.full(count * length + 1, pad_id, np.int32)
        padded[: len(stream)] = stream
        real = np.arange(count * length + 1) < len(stream)
        inputs, targets = padded[:-1].reshape(count, length), padded[1:].reshape(count, length)
        dataset = tf.data.Dataset.from_tensor_slices(
            pack(inputs, targets, real[:-1].reshape(count, length), real[1:].reshape(count, length)))
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    ids = tf.constant(stream)
    last_start = len(stream) - length - 1
    every = tf.ones([length], tf.bool)

    def cut(offset: tf.Tensor) -> Any:
        offset = tf.cast(offset % (last_start + 1), tf.int32)
        return pack(ids[offset : offset + length], ids[offset + 1 : offset + length + 1], every, every)

    dataset = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(count)
    dataset = dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
