"""Encoded (source, target) pairs and their tf.data pipeline.

A target of n tokens becomes the decoder input `[CLS] t1 .. tn` and the prediction target
`t1 .. tn [CLS]`: `[CLS]` starts and ends every target sentence (see kbuild.decoding.seq2seq).
A target in a pretrained checkpoint's vocabulary ends with its `[SEP]` instead
(`Tokenizer.target_end_id`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kbuild.data.example import Example
from kbuild.data.pipeline import encode_all
from kbuild.data.tokenizers import PAD_ID, Tokenizer
from kbuild.names import SOURCE_IDS, TARGET_IDS

_ENCODE_BATCH = 4096


@dataclass(frozen=True)
class EncodedPairs:
    """int32 arrays `[pairs, max_length]`, padded with 0."""

    source: np.ndarray
    target_in: np.ndarray
    target_out: np.ndarray


def encode_pairs(source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, examples: Sequence[Example],
                 max_length: int, key: str = "data") -> EncodedPairs:
    """Tokenise sources and targets; longer ones are cut to `max_length` (a warning counts them)."""
    sources = [example.text for example in examples]
    source = encode_all(source_tokenizer, sources)
    target_in = np.zeros((len(examples), max_length), np.int32)
    target_out = np.zeros((len(examples), max_length), np.int32)
    long_targets, begin, end = 0, target_tokenizer.cls_id, target_tokenizer.target_end_id
    for start in range(0, len(examples), _ENCODE_BATCH):
        chunk = [example.label for example in examples[start : start + _ENCODE_BATCH]]
        for row, ids in enumerate(target_tokenizer.token_ids(tf.constant(chunk, tf.string)).to_list(), start):
            long_targets += len(ids) > max_length - 1
            ids = ids[: max_length - 1]
            target_in[row, : len(ids) + 1] = [begin, *ids]
            target_out[row, : len(ids) + 1] = [*ids, end]
    long_sources = sum(1 for length in source_lengths(source_tokenizer, sources) if length > max_length)
    if long_sources or long_targets:
        print(f"[kbuild] warning: {key}: {long_sources} source(s) and {long_targets} target(s) longer than "
              f"preprocess.max_length ({max_length} tokens) were truncated", file=sys.stderr)
    return EncodedPairs(np.asarray(source, np.int32), target_in, target_out)


def source_lengths(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    lengths: list[int] = []
    for start in range(0, len(texts), _ENCODE_BATCH):
        ids = tokenizer.token_ids(tf.constant(list(texts[start : start + _ENCODE_BATCH]), tf.string))
        lengths.extend(ids.row_lengths().numpy().tolist())
    return lengths


def trim_batch(source: tf.Tensor, target_in: tf.Tensor, target_out: tf.Tensor):
    """Cut a batch to its longest source and longest target: padding costs no compute."""
    source_length = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(source != PAD_ID, tf.int32), axis=1)), 1)
    target_length = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(target_in != PAD_ID, tf.int32), axis=1)), 1)
    features = {SOURCE_IDS: source[:, :source_length], TARGET_IDS: target_in[:, :target_length]}
    return features, target_out[:, :target_length]


def pair_dataset(pairs: EncodedPairs, batch_size: int, *, shuffle: bool, seed: int = 0,
                 shuffle_buffer: int = 20000) -> tf.data.Dataset:
    """Batches of `({source_ids, target_ids}, target ids to predict)`."""
    dataset = tf.data.Dataset.from_tensor_slices((pairs.source, pairs.target_in, pairs.target_out))
    if shuffle:
        dataset = dataset.shuffle(max(1, min(shuffle_buffer, len(pairs.source))), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(trim_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
