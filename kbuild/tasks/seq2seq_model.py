"""The encoder-decoder model of task `seq2seq`.

`{source_ids [batch, S], target_ids [batch, T]} -> logits [batch, T, target vocabulary]`, built as
two named sub-models so decoding can run the encoder once per batch and then only the decoder:

- `encoder`: source ids -> the embedding and `model.blocks` -> encoded [batch, S, dim];
- `decoder`: (target ids, encoded, source ids) -> next-token logits; `model.decoder` says how.

The source ids go to the decoder too, for the cross-attention padding mask: an explicit mask
survives the sub-model boundary, where Keras's implicit masks do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.names import DECODER, ENCODER, LOGITS, SOURCE_IDS, TARGET_EMBEDDING, TARGET_IDS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec


def build_seq2seq_model(spec: Spec, source_vocab: int, target_vocab: int) -> keras.Model:
    """The model for a `seq2seq` spec (`model.decoder` set; see `Seq2SeqTask.spec_issues`)."""
    import keras
    from keras import ops

    from kbuild.layers import DropMask, TokenAndPositionEmbedding
    from kbuild.model import assemble, build_backbone

    embedding, max_length = spec.model.embedding, spec.preprocess.max_length
    backbone = build_backbone(spec, source_vocab, input_name=SOURCE_IDS)
    dim = backbone.dim
    encoder = keras.Model(backbone.inputs, DropMask(name="encoded")(backbone.features), name=ENCODER)

    target = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    encoded = keras.Input(shape=(None, dim), name="encoded")
    source_for_mask = keras.Input(shape=(None,), dtype="int32", name="source_mask_ids")
    y = TokenAndPositionEmbedding(target_vocab, embedding.dim, max_length, embedding.position,
                                  name=TARGET_EMBEDDING)(target)
    if embedding.dropout:
        y = keras.layers.Dropout(embedding.dropout, name="target_embedding_dropout")(y)
    y = spec.model.decoder.build(y, ops.not_equal(target, 0), encoded, ops.not_equal(source_for_mask, 0))
    logits = keras.layers.Dense(target_vocab, dtype="float32", name=LOGITS)(y)
    decoder = keras.Model([target, encoded, source_for_mask], logits, name=DECODER)

    source_in = keras.Input(shape=(None,), dtype="int32", name=SOURCE_IDS)
    target_in = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    outputs = decoder([target_in, encoder(source_in), source_in])
    return assemble(spec, {SOURCE_IDS: source_in, TARGET_IDS: target_in}, outputs)
