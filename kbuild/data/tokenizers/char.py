"""`char`: one token per Unicode character, the default for Chinese and other unsegmented text."""

from __future__ import annotations

import tensorflow as tf

from kbuild.data.tokenizers.base import WHITESPACE
from kbuild.data.tokenizers.lookup import NEWLINE_TOKEN, LookupTokenizer
from kbuild.data.tokenizers.registry import TOKENIZERS


@TOKENIZERS.register("char")
class CharTokenizer(LookupTokenizer):
    """Unicode characters (code points); each whitespace run becomes one space token.

    Collapsing whitespace keeps word boundaries for alphabetic text while keeping line breaks out
    of the vocabulary file (one token per line). With `newlines: true` each line break is kept as
    the token `␤` instead (a language model must learn where lines end). Invalid UTF-8 bytes
    become U+FFFD.
    """

    joiner = ""

    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        if self.spec.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        texts = self.mark_newlines(texts)
        texts = tf.strings.regex_replace(texts, WHITESPACE, " ")
        if not self.spec.newlines:
            texts = tf.strings.strip(texts)
        else:
            # Spaces around a line break carry nothing the ␤ token does not already say.
            texts = tf.strings.regex_replace(texts, f" ?{NEWLINE_TOKEN} ?", NEWLINE_TOKEN)
        return tf.strings.unicode_split(texts, "UTF-8")
