"""Generation as one TensorFlow graph, for the SavedModel's `generate` signature: a batch of raw
prompts and a length in, completions out, with tokenisation, decoding and detokenisation inside.

Prompts of different lengths share one buffer: each is left-aligned, `mask` marks its own tokens,
and the sampler starts at the shortest prompt's end, keeping longer prompts' tokens as it passes
them (keras_hub's convention). With a bounded context there is no sliding in the graph: prompt and
completion share one window (see `generate_in_graph`); `kbuild generate` slides instead.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def generate_in_graph(stepper: Any, tokenizer: Any, sampler: Any, prompts: tf.Tensor,
                      max_new_tokens: tf.Tensor) -> dict[str, tf.Tensor]:
    """{"completion": strings [batch], "text": prompt + completion} (TF ops only)."""
    ids = tokenizer.token_ids(prompts)
    new = tf.maximum(tf.cast(max_new_tokens, tf.int32), 1)
    if stepper.context is not None:
        # One window holds prompt and completion: the prompt keeps at least half of it (when it
        # is that long), the completion gets the rest, up to max_new_tokens.
        context = stepper.context
        longest = tf.cast(tf.reduce_max(ids.row_lengths()), tf.int32)
        keep = tf.maximum(context - new, tf.minimum(longest, context // 2))
        new = tf.minimum(new, context - keep)
        positions = tf.ragged.range(ids.row_lengths())
        cut = ids.row_lengths() - tf.cast(keep, tf.int64)
        ids = tf.ragged.boolean_mask(ids, positions >= tf.expand_dims(cut, 1))
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    total = tf.reduce_max(lengths) + new
    buffer = tf.cast(ids.to_tensor(default_value=0, shape=tf.stack([ids.nrows(out_type=tf.int32), total])), tf.int32)
    mask = tf.sequence_mask(lengths, total)
    # An empty prompt still needs one position to condition on: it reads [PAD] there.
    start = tf.maximum(tf.reduce_min(lengths), 1)
    out = stepper.decode(sampler, buffer, mask, start, None, use_cache=True)
    columns = tf.range(total)[tf.newaxis, :]
    ends = lengths[:, tf.newaxis]
    # Decode prompt and completion together, then drop the decoded prompt: word tokens get their
    # separating space and `##` pieces attach to the prompt's last word.
    full = tokenizer.detokenize(tf.ragged.boolean_mask(out, columns < ends + new))
    head = tokenizer.detokenize(tf.ragged.boolean_mask(out, columns < ends))
    completion = tf.strings.substr(full, tf.strings.length(head), tf.strings.length(full))
    return {"completion": completion, "text": tf.strings.join([prompts, completion])}
