"""`char`: one token per Unicode character, the default for Chinese and other unsegmented text."""

from __future__ import annotations

import tensorflow as tf

from kbuild.data.tokenizers.lookup import WHITESPACE, LookupTokenizer
from kbuild.data.tokenizers.registry import TOKENIZERS


@TOKENIZERS.register("char")
class CharTokenizer(LookupTokenizer):
    """Unicode characters (code points); each whitespace run becomes one space token.

    Collapsing whitespace keeps word boundaries for alphabetic text while keeping line breaks out
    of the vocabulary file (one token per line). Invalid UTF-8 bytes become U+FFFD.
    """

    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        if self.spec.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        texts = tf.strings.strip(tf.strings.regex_replace(texts, WHITESPACE, " "))
        return tf.strings.unicode_split(texts, "UTF-8")
