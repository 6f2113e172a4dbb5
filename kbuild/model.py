"""The backbone: token ids -> embedding (+ char features) -> registered blocks -> features.

It knows no task: `Task.compose` calls `build_backbone` and puts the task's outputs on its
features (`Task.build_outputs`), and the encoder-decoder tasks build their encoders with it. This
is the seam where a pretrained checkpoint plugs in instead of kbuild's own embedding and blocks.
Builders create layers and return tensors or models, with two effects beyond that, both on
purpose: `build_backbone` first seeds Keras's global random state with `spec.seed`, so every
build of a spec starts from the same weights wherever it runs (the training loop, the execution
probe's throwaway models, `kbuild summary`, benchmarks/model_fingerprint.py); and with
`model.backbone` the checkpoint's weights are read from its folder (`kbuild.pretrained`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbuild.blocks import BlockSpec, BuildContext
from kbuild.names import CHAR_IDS, EMBEDDING, SEGMENT_IDS, TOKEN_IDS, WORD_STARTS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec
    from kbuild.spec.model import CharFeaturesSpec, EmbeddingSpec, RegularizationSpec


@dataclass(frozen=True)
class Backbone:
    """A built backbone: the model inputs and the features a task head reads.

    Args:
        inputs: one `keras.Input` (token ids), or a dict of them by name (`token_ids` with
            `char_ids` or `word_starts`): what `keras.Model(inputs, ...)` takes.
        features: [batch, time, dim] with Keras's padding mask (per word for a word-aligned
            backbone).
        dim: the features' size.
    """

    inputs: Any
    features: Any
    dim: int


def build_backbone(spec: Spec, vocab_size: int, *, input_name: str = TOKEN_IDS, word_aligned: bool = False,
                   segments: int = 1) -> Backbone:
    """Embedding -> `model.blocks` for `spec`: int32 token ids [batch, time] (0 = padding) in.

    With `model.embedding.chars`, the inputs are a dict: `token_ids` and `char_ids` [batch, time,
    chars], as the `whitespace` tokenizer encodes them. A word-aligned backbone (a tagger over
    subwords) takes `token_ids` and `word_starts` [batch, words] and keeps each word's first
    sub-token after the blocks, so its features are per word.

    Args:
        spec: the validated spec.
        vocab_size: size of the tokenizer's vocabulary (ids 0..vocab_size-1).
        input_name: the token-id input's name (`source_ids` for an encoder-decoder's encoder).
        word_aligned: gather each word's first sub-token (see `Task.word_aligned`).
        segments: texts packed into each sequence (`Task.input_names`); with more than one, the
            inputs are a dict with `segment_ids` too, and a segment embedding tells the texts apart.
    """
    import keras

    keras.utils.set_random_seed(spec.seed)  # the same weights for every build of the spec (module docstring)
    if spec.model.backbone is not None:
        # A pretrained checkpoint's embeddings and layers replace kbuild's embedding -> blocks.
        from kbuild.pretrained.backbone import backbone_features

        inputs, x = backbone_features(spec, segments)
        return _gather_words(inputs, x, x.shape[-1], input_name) if word_aligned else Backbone(inputs, x, x.shape[-1])
    ids = keras.Input(shape=(None,), dtype="int32", name=input_name)
    inputs = ids
    x = build_embedding(ids, spec.model.embedding, vocab_size, spec.preprocess.max_length)
    chars = spec.model.embedding.chars
    if chars is not None:
        char_ids = keras.Input(shape=(None, chars.max_chars), dtype="int32", name=CHAR_IDS)
        inputs = {input_name: ids, CHAR_IDS: char_ids}
        x = add_char_features(x, char_ids, chars, spec.seed)
    if (bigrams := spec.model.embedding.bigrams) is not None:
        from kbuild.layers.bigrams import add_bigram_features

        x = add_bigram_features(x, ids, vocab_size, bigrams.buckets, bigrams.dim)
    if segments > 1:
        from kbuild.layers import SegmentEmbedding

        segment_ids = keras.Input(shape=(None,), dtype="int32", name=SEGMENT_IDS)
        inputs = {input_name: ids, SEGMENT_IDS: segment_ids}
        x = SegmentEmbedding(segments, spec.model.embedding.dim, name="segment_embedding")([x, segment_ids])
    if spec.model.embedding.dropout:
        # After the char and bigram features, so every part of the token's representation is regularised.
        x = keras.layers.Dropout(spec.model.embedding.dropout, name="embedding_dropout")(x)
    dim = spec.model.embedding.output_dim
    for block, ctx in block_contexts(spec):
        x = block.build(x, ctx)
        dim = block.output_dim(dim)
    if word_aligned:
        return _gather_words(ids, x, dim, input_name)
    return Backbone(inputs, x, dim)


def _gather_words(ids: Any, x: Any, dim: int, input_name: str) -> Backbone:
    """Each word's first sub-token's features (a tagger over subwords): inputs gain `word_starts`."""
    import keras

    from kbuild.layers import FirstSubtoken

    starts = keras.Input(shape=(None,), dtype="int32", name=WORD_STARTS)
    return Backbone({input_name: ids, WORD_STARTS: starts}, FirstSubtoken(name="first_subtoken")([x, starts]), dim)


def assemble(spec: Spec, inputs: Any, outputs: Any) -> keras.Model:
    """The whole model from its inputs and a task's outputs, with the spec's regularisation."""
    import keras

    model = keras.Model(inputs, outputs, name=spec.name.replace("-", "_"))
    apply_regularization(model, spec.model.regularization)
    return model


BACKBONE_FEATURE_LAYERS = (EMBEDDING, "char_cnn", "bigram_embedding", "segment_embedding")
"""The layers with weights that `build_backbone` adds before the blocks (the blocks' own layers
are named after their `BuildContext.name`)."""


def backbone_layers(model: keras.Model, spec: Spec) -> list[Any]:
    """The layers of `model` that `build_backbone` made for `spec` and that hold weights: the
    embedding, char and bigram features, and every block's layers. What `init_from` copies; the
    task's pooling and head are not among them."""
    prefixes = tuple(f"{ctx.name}_" for _, ctx in block_contexts(spec))
    return [layer for layer in model.layers
            if layer.weights and (layer.name in BACKBONE_FEATURE_LAYERS or layer.name.startswith(prefixes))]


def block_contexts(spec: Spec) -> Iterator[tuple[BlockSpec, BuildContext]]:
    """Each block of the spec with its build context (input size, seed, layer-name prefix): the
    one place that names blocks' layers, shared by the builder and by generation."""
    dim = spec.model.embedding.output_dim
    for i, block in enumerate(spec.model.blocks):
        yield block, BuildContext(dim=dim, max_length=spec.preprocess.max_length, seed=spec.seed + 1000 * i, name=f"block{i}")
        dim = block.output_dim(dim)


def build_embedding(ids, spec: EmbeddingSpec, vocab_size: int, max_length: int):
    """Token embedding (id 0 masked as padding) plus learned, sinusoidal or no position signal."""
    from kbuild.layers import TokenAndPositionEmbedding

    return TokenAndPositionEmbedding(
        vocab_size, spec.dim, max_length, spec.position, token_trainable=spec.trainable, name=EMBEDDING
    )(ids)


def add_char_features(words, char_ids, spec: CharFeaturesSpec, seed: int):
    """Concatenate each word's char-CNN feature to its embedding (the word's padding mask kept)."""
    import keras

    from kbuild.layers import CharCNN

    features = CharCNN(spec.buckets, spec.dim, spec.filters, spec.kernel_size, spec.dropout, seed=seed, name="char_cnn")(char_ids)
    return keras.layers.Concatenate(name="word_and_chars")([words, features])


def set_token_vectors(model: keras.Model, ids, vectors) -> None:
    """Overwrite rows `ids` of the token embedding table with `vectors` (pretrained word vectors);
    the other rows keep their random start."""
    import keras

    variable = model.get_layer(EMBEDDING).token.embeddings
    table = keras.ops.convert_to_numpy(variable).copy()
    table[ids] = vectors
    variable.assign(table)


def apply_regularization(model: keras.Model, spec: RegularizationSpec) -> None:
    """Attach L1/L2 penalties to every kernel (dense, attention and recurrent), not to embeddings."""
    import keras

    if not (spec.l1 or spec.l2):
        return
    regularizer = keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2)
    for variable in model.trainable_variables:
        if variable.path.endswith("kernel"):
            variable.regularizer = regularizer
