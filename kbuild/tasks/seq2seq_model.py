"""The encoder-decoder model of task `seq2seq`.

`{source_ids [batch, S], target_ids [batch, T]} -> logits [batch, T, target vocabulary]`, built as
two named sub-models so decoding can run the encoder once per batch and then only the decoder:

- `encoder`: source ids -> the embedding and `model.blocks` -> encoded [batch, S, dim], or a
  pretrained checkpoint's per-token features (`model.backbone`, a warm start);
- `decoder`: (target ids, encoded, source ids) -> next-token logits; `model.decoder` says how.

The source ids go to the decoder too, for the cross-attention padding mask: an explicit mask
survives the sub-model boundary, where Keras's implicit masks do not.

A warm-started encoder (Rothe, Narayan and Severyn, TACL 2020: a BERT-initialised encoder with a
fresh decoder) fixes the decoder's width at the checkpoint's hidden size, so that with a shared
vocabulary the target embedding starts from the checkpoint's token embeddings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.names import (
    DECODER,
    DECODER_FEATURES,
    ENCODER,
    LOGITS,
    SOURCE_IDS,
    TARGET_EMBEDDING,
    TARGET_EMBEDDING_NORM,
    TARGET_IDS,
)

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec


def build_seq2seq_model(spec: Spec, source_vocab: int, target_vocab: int, shared_vocabulary: bool = False) -> keras.Model:
    """The model for a `seq2seq` spec (`model.decoder` set; see `Seq2SeqTask.spec_issues`).

    Args:
        spec: the validated spec.
        source_vocab, target_vocab: the tokenizers' vocabulary sizes.
        shared_vocabulary: one tokenizer reads sources and writes targets (no
            `preprocess.target_tokenizer`); with `model.backbone` the decoder's token embedding
            then starts as a copy of the checkpoint's.
    """
    import keras
    from keras import ops

    from kbuild.layers import DropMask, TokenAndPositionEmbedding
    from kbuild.model import assemble, build_backbone

    embedding, max_length = spec.model.embedding, spec.preprocess.max_length
    backbone = build_backbone(spec, source_vocab, input_name=SOURCE_IDS)
    dim = backbone.dim
    encoder = keras.Model(backbone.inputs, DropMask(name="encoded")(backbone.features), name=ENCODER)
    warm = spec.model.backbone is not None
    if warm:
        _check_decoder_width(spec, dim)

    target = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    encoded = keras.Input(shape=(None, dim), name="encoded")
    source_for_mask = keras.Input(shape=(None,), dtype="int32", name="source_mask_ids")
    target_embedding = TokenAndPositionEmbedding(target_vocab, dim if warm else embedding.dim, max_length,
                                                 embedding.position, name=TARGET_EMBEDDING)
    y = target_embedding(target)
    start_from_checkpoint = warm and getattr(spec.model.decoder, "from_backbone", False)
    if start_from_checkpoint:
        # The checkpoint's layers read normalised embeddings, as its own embeddings are.
        y = keras.layers.LayerNormalization(name=TARGET_EMBEDDING_NORM)(y)
    if embedding.dropout:
        y = keras.layers.Dropout(embedding.dropout, name="target_embedding_dropout")(y)
    y = spec.model.decoder.build(y, ops.not_equal(target, 0), encoded, ops.not_equal(source_for_mask, 0))
    if spec.model.decoder.tie_embeddings:
        _check_tied_width(y.shape[-1], target_embedding.dim)
        logits = target_embedding(keras.layers.Identity(name=DECODER_FEATURES)(y), reverse=True)
    else:
        logits = keras.layers.Dense(target_vocab, dtype="float32", name=LOGITS)(y)
    decoder = keras.Model([target, encoded, source_for_mask], logits, name=DECODER)
    if warm and shared_vocabulary:
        _start_from_checkpoint_embeddings(target_embedding, encoder)
    if start_from_checkpoint:
        from kbuild.blocks.transformer_decoder import stack_layers
        from kbuild.pretrained.backbone import start_decoder_from_checkpoint

        start_decoder_from_checkpoint(encoder, stack_layers(decoder, DECODER, spec.model.decoder.layers),
                                      decoder.get_layer(TARGET_EMBEDDING_NORM), target_embedding.positions)

    source_in = keras.Input(shape=(None,), dtype="int32", name=SOURCE_IDS)
    target_in = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    outputs = decoder([target_in, encoder(source_in), source_in])
    return assemble(spec, {SOURCE_IDS: source_in, TARGET_IDS: target_in}, outputs)


def _check_decoder_width(spec: Spec, hidden: int) -> None:
    """The decoder's own checks (heads dividing its width) at the checkpoint's hidden size, which
    the spec cannot know before the checkpoint is loaded (see `ModelSpec.issues`)."""
    from kbuild.pretrained.checkpoint import CheckpointError

    for loc, message in spec.model.decoder.check(hidden):
        key = ".".join(str(part) for part in ("model", "decoder", *loc))
        raise CheckpointError(f"{key}: the decoder works at the checkpoint's hidden size ({hidden}). {message}")


def _check_tied_width(width: int, embedding_dim: int) -> None:
    """A tied output layer reads the decoder's features through the target embedding table; with a
    checkpoint its width is known only now (without one, `decoding_issues` checked the spec)."""
    from kbuild.pretrained.checkpoint import CheckpointError

    if width != embedding_dim:
        raise CheckpointError(f"model.decoder.tie_embeddings: the decoder's features are {width} wide but the target "
                              f"embedding is the checkpoint's {embedding_dim}; set units: {embedding_dim}, or "
                              "tie_embeddings: false")


def _start_from_checkpoint_embeddings(target_embedding, encoder) -> None:
    """Copy the checkpoint's token embeddings into the decoder's (same vocabulary, same width);
    the decoder's positions and layers start fresh."""
    from keras import ops

    from kbuild.pretrained.backbone import token_embedding_table
    from kbuild.pretrained.checkpoint import CheckpointError

    table, variable = token_embedding_table(encoder), target_embedding.token.embeddings
    if tuple(table.shape) != tuple(variable.shape):
        raise CheckpointError(f"model.backbone.from: the checkpoint's token embeddings are {tuple(table.shape)}, but "
                              f"its tokenizer gives the decoder {tuple(variable.shape)}; give the target its own "
                              "preprocess.target_tokenizer")
    variable.assign(ops.cast(table, variable.dtype))
