"""BERT masking inside tf.data: each batch of token ids becomes (corrupted ids, targets).

Devlin et al. (2019): choose 15 % of the real tokens; of those, 80 % become `[MASK]`, 10 % a random
token and 10 % stay as they were; the model predicts the original token at the chosen positions
only. The choice is drawn per batch, after batching (and bucketing), with stateless random ops
seeded from a seeded `Dataset.random` stream that draws anew each pass: every epoch masks
differently, and the same spec seed gives the same masks in every run (and on `--resume`, which
replays the stream).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kbuild.data.pipeline import Features, labelled_dataset
from kbuild.names import PAD_ID, TOKEN_IDS


class Masking(NamedTuple):
    """How to corrupt a batch.

    Args:
        mask_id: the `[MASK]` id.
        vocab_size: ids are below it; random replacements are drawn from the ordinary ones.
        first_ordinary: the first id that is not a special token (`[PAD]`, `[UNK]`, `[CLS]`).
        rate: share of real tokens chosen (at least one per text that has any).
        mask_share, random_share: of the chosen, the shares replaced by `[MASK]` and by a random
            token; the rest stay unchanged.
    """

    mask_id: int
    vocab_size: int
    first_ordinary: int
    rate: float = 0.15
    mask_share: float = 0.8
    random_share: float = 0.1


def mask_tokens(ids: tf.Tensor, seed: tf.Tensor, masking: Masking) -> tuple[tf.Tensor, tf.Tensor]:
    """int32 ids `[batch, time]` -> (corrupted ids, targets): targets hold the original id at the
    chosen positions and `PAD_ID` (ignored by the loss and metrics) everywhere else. Padding,
    special tokens and `[MASK]` itself are never chosen. `seed`: int64 `[2]`."""
    ids = tf.convert_to_tensor(ids, tf.int32)
    choose_seed, how_seed, random_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    ordinary = (ids >= masking.first_ordinary) & (ids != masking.mask_id)
    draw = tf.random.stateless_uniform(tf.shape(ids), choose_seed)
    chosen = ordinary & (draw < masking.rate)
    # A short text would often get no target at all: choose its lowest draw instead.
    lowest = tf.argmin(tf.where(ordinary, draw, 2.0), axis=1, output_type=tf.int32)
    needs_one = tf.reduce_any(ordinary, axis=1) & ~tf.reduce_any(chosen, axis=1)
    chosen |= (tf.one_hot(lowest, tf.shape(ids)[1], on_value=True, off_value=False) & needs_one[:, None])

    how = tf.random.stateless_uniform(tf.shape(ids), how_seed)
    to_mask = chosen & (how < masking.mask_share)
    to_random = chosen & (how >= masking.mask_share) & (how < masking.mask_share + masking.random_share)
    # Uniform over the ordinary ids other than [MASK]: draw among one fewer, then skip over it.
    random_ids = tf.random.stateless_uniform(tf.shape(ids), random_seed, masking.first_ordinary,
                                             masking.vocab_size - 1, dtype=tf.int32)
    random_ids = tf.where(random_ids >= masking.mask_id, random_ids + 1, random_ids)
    corrupted = tf.where(to_mask, masking.mask_id, tf.where(to_random, random_ids, ids))
    return corrupted, tf.where(chosen, ids, PAD_ID)


def masked_dataset(
    features: Features,
    masking: Masking,
    batch_size: int,
    *,
    seed: int,
    fresh_each_pass: bool,
    shuffle: bool = False,
    shuffle_buffer: int = 20000,
    bucketing: bool = False,
) -> tf.data.Dataset:
    """Batches of `(corrupted ids, targets)` over encoded texts: shuffled and bucketed as
    `labelled_dataset` does, then masked per batch. `fresh_each_pass`: new masks every pass over the
    data (train); otherwise the same masks every pass (valid and test scores stay comparable)."""
    ids = features[TOKEN_IDS] if isinstance(features, dict) else features
    # The ids ride along as per-token "labels", so shuffling and bucketing keep them in step.
    batches = labelled_dataset(ids, np.asarray(ids, np.int32), batch_size, shuffle=shuffle, seed=seed,
                               shuffle_buffer=shuffle_buffer, bucketing=bucketing, label_padding=PAD_ID)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=fresh_each_pass)
    pairs = tf.data.Dataset.zip(batches, seeds.batch(2))

    def corrupt(batch, batch_seed):
        return mask_tokens(batch[0], batch_seed, masking)

    # Sequential map: the masks then never depend on thread timing.
    return pairs.map(corrupt).prefetch(tf.data.AUTOTUNE)
