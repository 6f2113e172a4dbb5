"""Translation decoding with keras_hub samplers: greedy or beam search over the target side.

The encoder runs once per batch. Its output rides along as the sampler's `cache`, which the
sampler never changes but does expand per beam, so beam search needs nothing special. Each step
re-runs the decoder over the target prefix buffer and reads the logits at the step's position;
target sentences are short (tens of tokens), so this costs little and keeps every decoder type
(Transformer or attentional RNN) on one path. The target's `[CLS]` is both the start and the end
of a sentence: decoding starts from it and a row is finished once it produces it again.
Backend-neutral (keras.ops); TensorFlow callers wrap `decode_ids` in a tf.function.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from kbuild.data.tokenizers.base import CLS_ID, PAD_ID, UNK_ID
from kbuild.seq2seq.model import DECODER, ENCODER, LOGITS


def make_sampler(search: str, beams: int) -> Any:
    import keras_hub

    if search == "beam":
        return keras_hub.samplers.BeamSampler(num_beams=beams)
    return keras_hub.samplers.GreedySampler()


def decode_ids(model: Any, sampler: Any, source_ids: Any, max_length: int) -> Any:
    """Target ids [batch, max_length]: `[CLS]` at 0, then the translation, ended by `[CLS]` and
    anything after it (see `finished_mask`)."""
    encoder, decoder = model.get_layer(ENCODER), model.get_layer(DECODER)
    encoded = encoder(source_ids, training=False)
    buffer, prompt_mask = start_buffer(ops.shape(source_ids)[0], max_length)
    banned = banned_logits(decoder.output_shape[-1])
    features, project = split_projection(decoder)

    def next_token(prompt, cache, index):
        encoded, source = cache
        # Project only the step's position onto the vocabulary: the projection over every
        # position of the buffer would cost more than the decoder layers themselves.
        hidden = ops.take(features([prompt, encoded, source], training=False), index - 1, axis=1)
        return project(hidden) + banned, None, cache

    return sampler(next_token, buffer, cache=(encoded, source_ids), index=1, mask=prompt_mask,
                   stop_token_ids=(CLS_ID,))


def split_projection(decoder: Any) -> tuple[Any, Any]:
    """(the decoder up to its output layer, that output layer): the same weights, called apart."""
    import keras

    project = decoder.get_layer(LOGITS)
    return keras.Model(decoder.inputs, project.input, name=f"{decoder.name}_features"), project


def start_buffer(batch: Any, max_length: int) -> tuple[Any, Any]:
    """(ids, prompt mask) [batch, max_length] for a sampler: `[CLS]` at 0 as the prompt, the rest
    to fill."""
    buffer = ops.concatenate(
        [ops.full((batch, 1), CLS_ID, "int32"), ops.zeros((batch, max_length - 1), "int32")], axis=1)
    prompt_mask = ops.concatenate(
        [ops.ones((batch, 1), "bool"), ops.zeros((batch, max_length - 1), "bool")], axis=1)
    return buffer, prompt_mask


def banned_logits(vocab: int) -> Any:
    """Added to each step's logits: padding and [UNK] are never worth emitting."""
    return ops.convert_to_tensor([-1e9 if i in (PAD_ID, UNK_ID) else 0.0 for i in range(vocab)], "float32")


def finished_mask(ids: Any) -> Any:
    """True for the translation's own tokens: after the leading `[CLS]`, before the next one."""
    ends = ops.cumsum(ops.cast(ops.equal(ids[:, 1:], CLS_ID), "int32"), axis=1)
    keep = ops.equal(ends, 0) & ops.not_equal(ids[:, 1:], PAD_ID)
    return ops.concatenate([ops.zeros_like(keep[:, :1]), keep], axis=1)
