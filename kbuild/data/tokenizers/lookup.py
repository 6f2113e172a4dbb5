"""Split-then-look-up tokenizers (`word`, `char`): a graph split into tokens, counted for the
vocabulary, mapped to ids through one static hash table.

Counting runs the very same graph split that encoding uses, so the vocabulary can never disagree
with what `encode` produces (a Python re-implementation of the split could).
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from typing import Any

import tensorflow as tf

from kbuild.data.tokenizers.base import SPECIAL_TOKENS, UNK_ID, Tokenizer

_COUNT_BATCH = 8192

NEWLINE_TOKEN = "\u2424"
"""`␤` (SYMBOL FOR NEWLINE): stands for a line break under `newlines: true`, so the vocabulary
file, one token per line, can still hold it."""


class LookupTokenizer(Tokenizer):
    """Base of tokenizers that split text into string tokens, then look each one up."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._table: tf.lookup.StaticHashTable | None = None

    @abstractmethod
    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings `[batch]` -> ragged string tokens `[batch, (tokens)]`, normalised (lowercase)."""

    def mark_newlines(self, texts: tf.Tensor) -> tf.Tensor:
        """Line breaks -> `␤` when the spec keeps them (`newlines: true`); unchanged otherwise."""
        if not getattr(self.spec, "newlines", False):
            return texts
        return tf.strings.regex_replace(texts, r"\r?\n", NEWLINE_TOKEN)

    def postprocess(self, texts: tf.Tensor) -> tf.Tensor:
        if not getattr(self.spec, "newlines", False):
            return texts
        return tf.strings.regex_replace(texts, f" ?{NEWLINE_TOKEN} ?", "\n")

    def unknown_tokens(self, text: str) -> list[str]:
        """The tokens of `text` outside the vocabulary, exactly as `split` cuts them."""
        tokens = self.split(tf.constant([text]))[0].numpy().tolist()
        ids = self._table.lookup(tf.constant(tokens, tf.string, shape=[len(tokens)])).numpy().tolist()
        return [t.decode("utf-8") for t, i in zip(tokens, ids, strict=True) if i == UNK_ID]

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        tokens = self.split(texts)
        return tokens.with_flat_values(self._table.lookup(tokens.flat_values))

    def trackables(self) -> list[Any]:
        self.vocabulary  # noqa: B018  (raises the "call fit() or load()" error)
        return [self._table]

    def _learn_tokens(self, texts: list[str]) -> list[str]:
        """Tokens seen at least `min_frequency` times, by falling count, ties alphabetical."""
        counts: Counter[bytes] = Counter()
        for start in range(0, len(texts), _COUNT_BATCH):
            tokens = self.split(tf.constant(texts[start : start + _COUNT_BATCH], tf.string))
            counts.update(tokens.flat_values.numpy().tolist())
        min_frequency = getattr(self.spec, "min_frequency", 1)
        kept = [(-n, token) for token, n in counts.items() if n >= min_frequency]
        kept.sort()
        room = self.spec.vocab_size - len(SPECIAL_TOKENS)
        return [token.decode("utf-8") for _, token in kept[:room]]

    def _build(self, vocabulary: list[str]) -> None:
        # Special tokens are left out of the table: a text that happens to contain "[PAD]" must
        # not produce the padding id. Splitting never yields them anyway (brackets split off).
        tokens = vocabulary[len(SPECIAL_TOKENS) :]
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(tokens, tf.string, shape=[len(tokens)]),
            tf.range(len(SPECIAL_TOKENS), len(vocabulary), dtype=tf.int32),
        )
        self._table = tf.lookup.StaticHashTable(initializer, default_value=UNK_ID)
