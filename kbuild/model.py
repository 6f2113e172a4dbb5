"""Compile a spec into a Keras model: embedding -> registered blocks -> the task's outputs.

Builders are pure: they create layers and return a model; nothing here touches files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kbuild.blocks import BlockSpec, BuildContext
from kbuild.tasks import TASKS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec
    from kbuild.spec.model import CharFeaturesSpec, EmbeddingSpec, RegularizationSpec

TOKEN_IDS = "token_ids"
CHAR_IDS = "char_ids"
WORD_STARTS = "word_starts"
"""Model input names; a model with char features (or a tagger over subwords) takes a dict."""


def build_model(spec: Spec, vocab_size: int, labels: list[str]) -> keras.Model:
    """The model for `spec`: int32 token ids [batch, time] (0 = padding) -> task outputs.

    With `model.embedding.chars`, the input is a dict: `token_ids` and `char_ids` [batch, time,
    chars], as the `whitespace` tokenizer encodes them. A word-aligned task (a tagger over
    subwords) takes `token_ids` and `word_starts` [batch, words], and its outputs are per word.

    Args:
        spec: the validated spec.
        vocab_size: size of the tokenizer's vocabulary (ids 0..vocab_size-1).
        labels: the label vocabulary (task-dependent; class names for classification).
    """
    import keras

    keras.utils.set_random_seed(spec.seed)
    if spec.model.backbone is not None:
        return _build_on_pretrained(spec, vocab_size, labels)
    ids = keras.Input(shape=(None,), dtype="int32", name=TOKEN_IDS)
    inputs = ids
    x = build_embedding(ids, spec.model.embedding, vocab_size, spec.preprocess.max_length)
    chars = spec.model.embedding.chars
    if chars is not None:
        char_ids = keras.Input(shape=(None, chars.max_chars), dtype="int32", name=CHAR_IDS)
        inputs = {TOKEN_IDS: ids, CHAR_IDS: char_ids}
        x = add_char_features(x, char_ids, chars, spec.seed)
    if spec.model.embedding.dropout:
        # After the char features, so both parts of the word representation are regularised.
        x = keras.layers.Dropout(spec.model.embedding.dropout, name="embedding_dropout")(x)
    for block, ctx in block_contexts(spec):
        x = block.build(x, ctx)
    task = TASKS.get(spec.task)
    if task.word_aligned(spec):
        from kbuild.layers import FirstSubtoken

        starts = keras.Input(shape=(None,), dtype="int32", name=WORD_STARTS)
        inputs = {TOKEN_IDS: ids, WORD_STARTS: starts}
        x = FirstSubtoken(name="first_subtoken")([x, starts])
    outputs = task.build_outputs(x, spec, labels, vocab_size)
    model = keras.Model(inputs, outputs, name=spec.name.replace("-", "_"))
    apply_regularization(model, spec.model.regularization)
    return model


def _build_on_pretrained(spec: Spec, vocab_size: int, labels: list[str]) -> keras.Model:
    """`model.backbone`: the pretrained encoder's per-token features replace embedding -> blocks;
    the task's outputs follow as usual (per word, through FirstSubtoken, for a tagger)."""
    import keras

    from kbuild.pretrained.backbone import backbone_features

    ids, x = backbone_features(spec)
    inputs = ids
    task = TASKS.get(spec.task)
    if task.word_aligned(spec):
        from kbuild.layers import FirstSubtoken

        starts = keras.Input(shape=(None,), dtype="int32", name=WORD_STARTS)
        inputs = {TOKEN_IDS: ids, WORD_STARTS: starts}
        x = FirstSubtoken(name="first_subtoken")([x, starts])
    return keras.Model(inputs, task.build_outputs(x, spec, labels, vocab_size), name=spec.name.replace("-", "_"))


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
        vocab_size, spec.dim, max_length, spec.position, token_trainable=spec.trainable, name="embedding"
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

    variable = model.get_layer("embedding").token.embeddings
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


def summarize(spec: Spec) -> str:
    """The layer table and parameter count of `spec`'s model, with the vocabulary fitted on train."""
    from kbuild.data import build as build_data

    bundle = build_data(spec, splits=("train",))
    model = TASKS.get(spec.task).build_model(spec, bundle)
    lines: list[str] = []
    model.summary(print_fn=lambda line, *_, **__: lines.append(line), line_length=100)
    return "\n".join(lines)
