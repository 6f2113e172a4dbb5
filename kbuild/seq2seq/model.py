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

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec

SOURCE_IDS = "source_ids"
TARGET_IDS = "target_ids"
LOGITS = "logits"
ENCODER = "encoder"
DECODER = "decoder"
TARGET_EMBEDDING = "target_embedding"


def build_seq2seq_model(spec: Spec, source_vocab: int, target_vocab: int) -> keras.Model:
    """The model for a `seq2seq` spec (`model.decoder` set; see `Seq2SeqTask.spec_issues`)."""
    import keras
    from keras import ops

    from kbuild.layers import DropMask, TokenAndPositionEmbedding
    from kbuild.model import apply_regularization, block_contexts, build_embedding

    keras.utils.set_random_seed(spec.seed)
    embedding, max_length = spec.model.embedding, spec.preprocess.max_length

    source = keras.Input(shape=(None,), dtype="int32", name=SOURCE_IDS)
    x = build_embedding(source, embedding, source_vocab, max_length)
    if embedding.dropout:
        x = keras.layers.Dropout(embedding.dropout, name="embedding_dropout")(x)
    dim = embedding.dim
    for block, ctx in block_contexts(spec):
        x = block.build(x, ctx)
        dim = block.output_dim(dim)
    encoder = keras.Model(source, DropMask(name="encoded")(x), name=ENCODER)

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
    model = keras.Model({SOURCE_IDS: source_in, TARGET_IDS: target_in}, outputs, name=spec.name.replace("-", "_"))
    apply_regularization(model, spec.model.regularization)
    return model
