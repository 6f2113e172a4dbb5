"""`whitespace`: one token per whitespace-separated word, for sequence labelling.

A tagger needs exactly one id per labelled token: CoNLL files give the tokens already split, and
the reader joins them with spaces, so splitting on whitespace (and nothing else: `word` would also
split off punctuation inside "U.S." or "1-0") restores them 1:1. An exported tagger therefore takes
raw sentences and tags each whitespace-separated word.

With `char_length` set, `encode` also gives each word's characters (for the char-CNN word
features): Unicode code points hashed into `char_buckets` ids, 0 for padding. Hashing needs no
character vocabulary to fit or save, and a character never seen in training still gets its own id
(code points below `char_buckets - 1`, all of ASCII and Latin-1 with the default, never collide).
Characters are read before lowercasing: capitalisation is the strongest cue for names.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kbuild.data.tokenizers.base import PAD_ID
from kbuild.data.tokenizers.lookup import LookupTokenizer
from kbuild.data.tokenizers.registry import TOKENIZERS
from kbuild.names import CHAR_IDS, TOKEN_IDS


@TOKENIZERS.register("whitespace")
class WhitespaceTokenizer(LookupTokenizer):
    """Whitespace-separated words, looked up in a vocabulary fitted on train; unknown ones are [UNK].

    Args:
        char_length: characters kept per word in the `char_ids` feature; `None` encodes word ids
            only (a plain tensor, as every other tokenizer).
        char_buckets: number of character ids (id 0 is padding).
    """

    def __init__(self, *args: Any, char_length: int | None = None, char_buckets: int = 512, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if char_length is not None and char_length < 1:
            raise ValueError(f"Expected char_length >= 1; received {char_length}")
        self.char_length, self.char_buckets = char_length, char_buckets

    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        words = self.words(texts)
        if self.spec.lowercase:
            words = words.with_flat_values(tf.strings.lower(words.flat_values, encoding="utf-8"))
        return words

    def encode(self, texts: tf.Tensor) -> tf.Tensor | dict[str, tf.Tensor]:
        ids = super().encode(texts)
        if self.char_length is None:
            return ids
        return {TOKEN_IDS: ids, CHAR_IDS: self.char_ids(texts)}

    def char_ids(self, texts: tf.Tensor) -> tf.Tensor:
        """int32 `[batch, max_length, char_length]`: each word's first characters, 0-padded."""
        words = self.words(texts)[:, : self.max_length]
        codepoints = tf.strings.unicode_decode(words.flat_values, "UTF-8", errors="replace")
        codepoints = codepoints[:, : self.char_length]
        ids = codepoints.with_flat_values(1 + codepoints.flat_values % (self.char_buckets - 1))
        ids = words.with_flat_values(ids)
        return tf.cast(ids.to_tensor(PAD_ID, shape=[None, self.max_length, self.char_length]), tf.int32)
