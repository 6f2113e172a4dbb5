"""Translation decoding with keras_hub samplers: greedy or beam search over the target side.

The encoder runs once per batch. Its output rides along in the sampler's `cache`, which the
sampler expands per beam, so beam search needs nothing special. A Transformer decoder then runs
one target position per step (`CachedTransformerDecoding`): each layer keeps its self-attention
keys and values, and the cross-attention keys and values of the encoder output, computed once.
Other decoders re-run over the target prefix buffer each step and read the logits at the step's
position. The target's `[CLS]` is both the start and the end of a sentence: decoding starts from
it and a row is finished once it produces it again. A target in a pretrained checkpoint's
vocabulary starts with its `[CLS]` and ends with its `[SEP]` (`TargetTokens.of` the tokenizer).
Backend-neutral (keras.ops); TensorFlow callers wrap `decode_ids` in a tf.function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras import ops, tree

from kbuild.data.tokenizers.base import CLS_ID, PAD_ID, UNK_ID
from kbuild.decoding.constraints import StepConstraints
from kbuild.names import (
    DECODER,
    DECODER_FEATURES,
    ENCODER,
    LOGITS,
    TARGET_EMBEDDING,
    TARGET_EMBEDDING_NORM,
)


@dataclass(frozen=True)
class TargetTokens:
    """The target vocabulary's bookkeeping ids: `start` opens every output, `end` finishes it and
    `unknown` is never emitted. The defaults are kbuild's own vocabularies' (`[CLS]` both starts
    and ends)."""

    start: int = CLS_ID
    end: int = CLS_ID
    unknown: int = UNK_ID

    @classmethod
    def of(cls, tokenizer: Any) -> TargetTokens:
        """The ids the target tokenizer trains with (see kbuild.data.pairs)."""
        return cls(tokenizer.cls_id, tokenizer.target_end_id, tokenizer.unknown_id)


def make_sampler(search: str, beams: int, length_penalty: float | None = None) -> Any:
    import keras_hub

    from kbuild.decoding.beam import BeamSearch

    if search == "beam":
        return BeamSearch(num_beams=beams, length_penalty=length_penalty)
    return keras_hub.samplers.GreedySampler()


def step_constraints(decoder_spec: Any, vocab: int, tokens: TargetTokens = TargetTokens()) -> StepConstraints:
    """The spec decoder's `min_length` and `no_repeat_ngram_size` (neither without a spec)."""
    return StepConstraints(vocab, getattr(decoder_spec, "min_length", 0), getattr(decoder_spec, "no_repeat_ngram_size", 0),
                           tokens.end, tokens.unknown)


def decode_ids(model: Any, sampler: Any, source_ids: Any, max_length: int, decoder_spec: Any = None,
               use_cache: bool = True, tokens: TargetTokens = TargetTokens()) -> Any:
    """Target ids [batch, max_length]: `tokens.start` at 0, then the translation, ended by
    `tokens.end` and anything after it (see `finished_mask`). `decoder_spec` (the spec's
    `model.decoder`) lets a Transformer decoder use its caches; `use_cache=False` re-runs the
    prefix (for comparisons)."""
    encoder, decoder = model.get_layer(ENCODER), model.get_layer(DECODER)
    encoded = encoder(source_ids, training=False)
    buffer, prompt_mask = start_buffer(ops.shape(source_ids)[0], max_length, tokens.start)
    constrain = step_constraints(decoder_spec, decoder.output_shape[-1], tokens)
    if use_cache and getattr(decoder_spec, "type", None) == "transformer":
        return CachedTransformerDecoding(decoder, decoder_spec).decode(sampler, encoded, source_ids, buffer, prompt_mask,
                                                                       constrain, tokens.end)
    features, project = split_projection(decoder)

    def next_token(prompt, cache, index):
        encoded, source = cache
        # Project only the step's position onto the vocabulary: the projection over every
        # position of the buffer would cost more than the decoder layers themselves.
        hidden = ops.take(features([prompt, encoded, source], training=False), index - 1, axis=1)
        return constrain(project(hidden), prompt, index), None, cache

    return sampler(next_token, buffer, cache=(encoded, source_ids), index=1, mask=prompt_mask,
                   stop_token_ids=(tokens.end,))


class CachedTransformerDecoding:
    """A trained Transformer decoder (see `TransformerDecoderSpec.build`) run one target position
    per step, with keras_hub's caches: per layer, self-attention keys/values `[batch, 2,
    max_length, heads, head_dim]` that each step extends at its position, and the encoder
    output's cross-attention keys/values `[batch, 2, source, heads, head_dim]`, computed once."""

    def __init__(self, decoder: Any, spec: Any):
        from kbuild.blocks.transformer_decoder import stack_layers

        self.embedding = decoder.get_layer(TARGET_EMBEDDING)
        # A decoder started from a checkpoint (`from_backbone`) normalises its embeddings.
        self.embedding_norm = decoder.get_layer(TARGET_EMBEDDING_NORM) if spec.from_backbone else None
        self.layers = stack_layers(decoder, DECODER, spec.layers)
        self.norm = decoder.get_layer("decoder_final_norm") if spec.norm == "pre" else None
        self.project = output_projection(decoder)
        self.heads = spec.heads

    def run(self, token: Any, encoded: Any, source_ids: Any, caches: tuple, index: Any, fill_cross: bool) -> tuple:
        """(logits [batch, vocab] of `token` [batch, 1] at position `index`, updated caches)."""
        self_caches, cross_caches = caches
        # A copy drops the padding mask Keras attached to the embedding: keras_hub would merge its
        # [batch, 1] shape into the [batch, 1, cache length] causal mask. Decoded tokens are real.
        x = ops.copy(self.embedding(token, start_index=index))
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        source_mask = ops.not_equal(source_ids, PAD_ID)
        new_self, new_cross = [], []
        for layer, self_cache, cross_cache in zip(self.layers, self_caches, cross_caches, strict=True):
            x, self_cache, cross_cache = layer(
                x, encoder_sequence=encoded, encoder_padding_mask=source_mask,
                self_attention_cache=self_cache, self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache, cross_attention_cache_update_index=0 if fill_cross else None,
                training=False)
            new_self.append(self_cache)
            new_cross.append(cross_cache)
        if self.norm is not None:
            x = self.norm(x)
        return self.project(x[:, 0, :]), (tuple(new_self), tuple(new_cross))

    def decode(self, sampler: Any, encoded: Any, source_ids: Any, buffer: Any, prompt_mask: Any,
               constrain: StepConstraints, end_id: int = CLS_ID) -> Any:
        batch, length, source_length = ops.shape(buffer)[0], ops.shape(buffer)[1], ops.shape(encoded)[1]
        head_dim = self.embedding.dim // self.heads
        dtype = self.layers[0].compute_dtype
        empty = (tuple(ops.zeros((batch, 2, length, self.heads, head_dim), dtype) for _ in self.layers),
                 tuple(ops.zeros((batch, 2, source_length, self.heads, head_dim), dtype) for _ in self.layers))
        # Prefill with the leading start token: it computes every layer's cross-attention cache (the first
        # step then recomputes position 0, writing the same keys and values again).
        _, (self_caches, cross_caches) = self.run(buffer[:, :1], encoded, source_ids, empty, 0, fill_cross=True)
        # Only the self-attention caches are the loop's state. The source side (the encoder output,
        # its mask, the cross-attention keys and values) is the same for every beam of a sentence:
        # repeated once here to beam search's rows (sentence b's beams are rows b * beams + j), it
        # stays out of the state that beam search reorders at every step. As state, with MiniLM
        # features of 128 tokens it was 700 MB gathered per step for 128 sentences of 4 beams.
        beams = getattr(sampler, "num_beams", 1)
        source = tree.map_structure(lambda x: ops.repeat(x, beams, axis=0), (cross_caches, encoded, source_ids))

        def next_token(prompt, self_caches, index):
            cross_caches, encoded, source_ids = source
            # The prompt's batch, not `batch`: beam search runs batch * beams rows.
            token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
            logits, (self_caches, _) = self.run(token, encoded, source_ids, (self_caches, cross_caches), index - 1,
                                                fill_cross=False)
            return constrain(logits, prompt, index), None, self_caches

        return sampler(next_token, buffer, cache=self_caches, index=1, mask=prompt_mask, stop_token_ids=(end_id,))


def split_projection(decoder: Any) -> tuple[Any, Any]:
    """(the decoder up to its output layer, that output layer): the same weights, called apart."""
    import keras

    project = output_projection(decoder)
    features = decoder.get_layer(LOGITS).input if _has_layer(decoder, LOGITS) else decoder.get_layer(DECODER_FEATURES).output
    return keras.Model(decoder.inputs, features, name=f"{decoder.name}_features"), project


def output_projection(decoder: Any) -> Any:
    """Features `[..., width]` -> logits `[..., vocab]`: the decoder's output layer, or its target
    embedding read in reverse (`model.decoder.tie_embeddings`)."""
    if _has_layer(decoder, LOGITS):
        return decoder.get_layer(LOGITS)
    embedding = decoder.get_layer(TARGET_EMBEDDING)
    return lambda features: embedding(features, reverse=True)


def _has_layer(model: Any, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def start_buffer(batch: Any, max_length: int, start_id: int = CLS_ID) -> tuple[Any, Any]:
    """(ids, prompt mask) [batch, max_length] for a sampler: `start_id` at 0 as the prompt, the
    rest to fill."""
    buffer = ops.concatenate(
        [ops.full((batch, 1), start_id, "int32"), ops.zeros((batch, max_length - 1), "int32")], axis=1)
    prompt_mask = ops.concatenate(
        [ops.ones((batch, 1), "bool"), ops.zeros((batch, max_length - 1), "bool")], axis=1)
    return buffer, prompt_mask


def finished_mask(ids: Any, end_id: int = CLS_ID) -> Any:
    """True for the translation's own tokens: after the leading start token, before the first
    `end_id`."""
    ends = ops.cumsum(ops.cast(ops.equal(ids[:, 1:], end_id), "int32"), axis=1)
    keep = ops.equal(ends, 0) & ops.not_equal(ids[:, 1:], PAD_ID)
    return ops.concatenate([ops.zeros_like(keep[:, :1]), keep], axis=1)
