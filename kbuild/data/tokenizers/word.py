"""`word`: words and single punctuation marks; out-of-vocabulary words become `[UNK]`."""

from __future__ import annotations

import tensorflow as tf

from kbuild.data.tokenizers.base import WHITESPACE
from kbuild.data.tokenizers.lookup import LookupTokenizer
from kbuild.data.tokenizers.registry import TOKENIZERS

# Each punctuation mark, symbol and CJK ideograph is a token of its own, as in BERT's basic
# tokenizer: "it's great!" -> it ' s great !, and Chinese text still splits into characters.
# The newline token ␤ is a symbol (\p{S}), so it splits off too.
_SEPARATE = r"([\p{P}\p{S}\p{Han}])"


@TOKENIZERS.register("word")
class WordTokenizer(LookupTokenizer):
    """Whitespace-and-punctuation words (core TF string ops only, no tf-text op in the graph)."""

    joiner = " "

    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        if self.spec.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        texts = self.mark_newlines(texts)
        texts = tf.strings.regex_replace(texts, _SEPARATE, r" \1 ")
        texts = tf.strings.regex_replace(texts, WHITESPACE, " ")
        return tf.strings.split(texts)
