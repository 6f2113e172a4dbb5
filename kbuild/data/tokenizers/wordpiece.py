"""`wordpiece`: subwords learned from the train split, via keras_hub (which uses tf-text)."""

from __future__ import annotations

from typing import Any

import keras_hub
import tensorflow as tf

from kbuild.data.tokenizers.base import SPECIAL_TOKENS, Tokenizer
from kbuild.data.tokenizers.registry import TOKENIZERS

_LEARN_BATCH = 1024


@TOKENIZERS.register("wordpiece")
class WordPieceTokenizer(Tokenizer):
    """BERT-style WordPiece: split on whitespace, punctuation and CJK characters, then into the
    longest known subwords (`##` marks a continuation); unknown words become `[UNK]`.

    The exported graph holds tf-text ops: a process loading it must `import tensorflow_text`.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._layer: keras_hub.tokenizers.WordPieceTokenizer | None = None
        self._tokenize: Any = None

    def postprocess(self, texts: tf.Tensor) -> tf.Tensor:
        # "play ##ing" -> "playing": continuation pieces attach to the piece before them.
        return tf.strings.regex_replace(texts, " ##", "")

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self._tokenize(texts)

    def trackables(self) -> list[Any]:
        self.vocabulary  # noqa: B018  (raises the "call fit() or load()" error)
        return [self._layer]

    def _learn_tokens(self, texts: list[str]) -> list[str]:
        # keras_hub's compute_word_piece_vocabulary, with tf-text's `lower_thresh` exposed as
        # `min_frequency` (keras_hub fixes it at 10, which caps CoNLL-2003's vocabulary at 3.7k
        # pieces whatever vocab_size asks): the same split as encoding, counts and learner.
        from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize
        from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

        data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(_LEARN_BATCH)
        words = data.map(lambda text: pretokenize(text, self.spec.lowercase, False, True, True))
        vocabulary = learner.learn(
            learner.count_words(words),
            vocab_size=self.spec.vocab_size,
            reserved_tokens=list(SPECIAL_TOKENS),
            lower_thresh=self.spec.min_frequency,
            include_joiner_token=True,
            joiner="##",
        )
        return vocabulary[: self.spec.vocab_size]

    def _build(self, vocabulary: list[str]) -> None:
        self._layer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary,
            lowercase=self.spec.lowercase,
            oov_token=SPECIAL_TOKENS[1],
            dtype="int32",
        )
        # The layer has no weights; marking it built lets ExportArchive.track() accept it.
        self._layer.build(None)
        # keras_hub runs a pure-Python tokenizer when called eagerly; a graph function keeps
        # eager encoding on the same TensorFlow path as training and serving (and fast).
        self._tokenize = tf.function(
            self._layer.tokenize,
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )
