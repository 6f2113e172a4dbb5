"""Decoding latent codes into sentences with keras_hub samplers, and the TensorFlow-graph codec
(`TextVae`) that evaluation, `kbuild generate` and the export share.

The code z rides along as the sampler's `cache`, which the sampler never changes (as the encoder
output does in kbuild.decoding.seq2seq). Each step re-runs the decoder over the prefix buffer and
reads the logits at the step's position: sentences are short, and the decoder stays one Keras
model. `[CLS]` starts every sentence and a row is finished once it produces `[CLS]` again.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from kbuild.data.tokenizers.base import CLS_ID
from kbuild.decoding.constraints import banned_logits
from kbuild.decoding.seq2seq import finished_mask, split_projection, start_buffer
from kbuild.names import DECODER, ENCODER


def decode_ids(model: Any, sampler: Any, z: Any, max_length: int) -> Any:
    """Token ids [batch, max_length] for latent codes z [batch, dim]: `[CLS]`, the sentence, then
    `[CLS]` and anything after it (keep the sentence with `finished_mask`)."""
    decoder = model.get_layer(DECODER)
    buffer, prompt_mask = start_buffer(ops.shape(z)[0], max_length)
    banned = banned_logits(decoder.output_shape[-1])
    features, project = split_projection(decoder)

    def next_token(prompt, cache, index):
        hidden = ops.take(features([prompt, cache], training=False), index - 1, axis=1)
        return project(hidden) + banned, None, cache

    return sampler(next_token, buffer, cache=ops.cast(z, "float32"), index=1, mask=prompt_mask,
                   stop_token_ids=(CLS_ID,))


def posterior_mean(model: Any, source_ids: Any) -> Any:
    """The encoder's posterior means [batch, dim] (the codes reconstructions decode)."""
    mean, _ = model.get_layer(ENCODER)(source_ids, training=False)
    return mean


class TextVae:
    """Strings <-> latent codes in the TensorFlow graph.

    Args:
        model: a trained vae model (see kbuild.tasks.vae_model).
        tokenizer: the run's tokenizer.
        max_length: `preprocess.max_length`: the longest sentence decoded, `[CLS]`s included.
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    def encode(self, text: Any) -> Any:
        """Strings [batch] -> posterior means [batch, dim]."""
        return posterior_mean(self.model, self.tokenizer.encode(text))

    def decode(self, z: Any, sampler: Any) -> Any:
        """Latent codes [batch, dim] -> strings [batch]."""
        import tensorflow as tf

        ids = decode_ids(self.model, sampler, z, self.max_length)
        return self.tokenizer.detokenize(tf.ragged.boolean_mask(ids, finished_mask(ids)))
