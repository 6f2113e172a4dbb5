"""Question + context -> overlapping windows `[CLS] question [SEP] context piece [SEP]`, every
context token keeping its byte offsets into the raw context. TensorFlow ops only, so the same code
builds the training windows and runs inside an exported SavedModel.

Offsets: the context is split into words with `tf_text.regex_split_with_offsets` (BERT's split:
whitespace dropped, each punctuation mark and CJK character a word of its own), and each word is
tokenised on its own by the run's tokenizer, so no token spans two words. A word's pieces get exact
offsets when their texts (`##` dropped) add up to the word's bytes (lower-cased ASCII, characters);
otherwise (an accent stripped, an `[UNK]`) every piece of the word spans the whole word, so an
answer is still cut at word boundaries of the raw text and is always an exact substring of it.

Windows follow Hugging Face's `run_qa.py`: `doc_stride` tokens are shared by consecutive windows,
and each window holds as much context as fits after the question (cut to `max_query_length`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from kbuild.data.tokenizers.base import PAD_ID, Tokenizer
from kbuild.names import SEGMENT_IDS, TOKEN_IDS

_WHITESPACE = r"\s|\p{Cc}|\p{Cf}"
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}"
_CJK = (r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]|"
        r"[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]")
SPLIT = f"{_WHITESPACE}|{_PUNCTUATION}|{_CJK}"
KEEP = f"{_PUNCTUATION}|{_CJK}"
NOT_CONTEXT = -1
"""The offset of a position that holds no context token ([CLS], the question, [SEP], padding)."""


@dataclass(frozen=True)
class WindowShape:
    """How contexts are cut: `max_length` tokens per window, the question cut to
    `max_query_length` tokens, `doc_stride` tokens shared by consecutive windows."""

    max_length: int
    doc_stride: int
    max_query_length: int

    @property
    def room(self) -> int:
        """Context tokens a window holds after the longest question, [CLS] and two [SEP]."""
        return self.max_length - 3 - self.max_query_length


def tokens_with_offsets(tokenizer: Tokenizer, texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Strings `[batch]` -> (ids, starts, ends): int32 ragged `[batch, (tokens)]`, the byte offsets
    of each token in its raw text (see the module docstring)."""
    import tensorflow_text as tf_text

    words, begins, ends = tf_text.regex_split_with_offsets(tf.convert_to_tensor(texts, tf.string), SPLIT, KEEP)
    pieces = tf.cast(tokenizer.token_ids(words.flat_values), tf.int32)  # [words, (pieces)]
    vocabulary = tf.constant(tokenizer.vocabulary, tf.string)
    texts_of = tf.strings.regex_replace(tf.gather(vocabulary, pieces.flat_values), "^##", "")
    lengths = pieces.with_flat_values(tf.cast(tf.strings.length(texts_of), tf.int64))
    begin, end = begins.flat_values, ends.flat_values
    exact = (tf.reduce_sum(lengths, axis=1) == end - begin) & tf.reduce_all(pieces != tokenizer.unknown_id, axis=1)
    inside = tf.math.cumsum(lengths, axis=1, exclusive=True)
    exact_pieces = tf.repeat(exact, pieces.row_lengths())
    word_begin = tf.repeat(begin, pieces.row_lengths())
    word_end = tf.repeat(end, pieces.row_lengths())
    piece_start = tf.where(exact_pieces, word_begin + inside.flat_values, word_begin)
    piece_end = tf.where(exact_pieces, piece_start + lengths.flat_values, word_end)
    # Pieces per text: the pieces of its words, in order.
    per_text = pieces.row_lengths()
    counts = tf.math.unsorted_segment_sum(per_text, words.value_rowids(), words.nrows())

    def regroup(values: tf.Tensor) -> tf.RaggedTensor:
        return tf.RaggedTensor.from_row_lengths(values, counts)

    return regroup(pieces.flat_values), regroup(piece_start), regroup(piece_end)


def cut_windows(tokenizer: Tokenizer, shape: WindowShape, questions: tf.Tensor, contexts: tf.Tensor) -> dict[str, tf.Tensor]:
    """Questions and contexts `[batch]` -> windows, dense `[windows, max_length]` unless noted:

    - `token_ids`, `segment_ids`: the model's inputs (segment 0: `[CLS]`, question, `[SEP]`;
      segment 1: the context piece and its `[SEP]`);
    - `starts`, `ends`: int64 byte offsets of each context token in its context, -1 elsewhere;
    - `example`: int32 `[windows]`, the question each window belongs to (windows of a question
      are consecutive, in context order).
    """
    questions, contexts = tf.convert_to_tensor(questions, tf.string), tf.convert_to_tensor(contexts, tf.string)
    query = tf.cast(tokenizer.token_ids(questions), tf.int32)[:, : shape.max_query_length]
    context, starts, ends = tokens_with_offsets(tokenizer, contexts)
    query_length = tf.cast(query.row_lengths(), tf.int32)
    room = shape.max_length - 3 - query_length
    step = tf.maximum(room - shape.doc_stride, 1)
    total = tf.cast(context.row_lengths(), tf.int32)
    # One window, then one more per `step` tokens that do not fit in the first.
    windows = 1 + tf.maximum(0, (total - room + step - 1) // step)
    example = tf.repeat(tf.range(tf.size(windows)), windows)
    first = tf.ragged.range(windows).flat_values * tf.gather(step, example)
    count = tf.minimum(tf.gather(room, example), tf.gather(total, example) - first)
    row_start = tf.gather(tf.cast(context.row_splits[:-1], tf.int32), example)
    index = tf.ragged.range(row_start + first, row_start + first + count)

    def piece(values: tf.RaggedTensor) -> tf.RaggedTensor:
        return index.with_flat_values(tf.gather(values.flat_values, index.flat_values)).with_row_splits_dtype(tf.int64)

    rows = tf.size(example)
    one = tf.ones([rows, 1], tf.int32)
    cls = tf.RaggedTensor.from_tensor(one * tokenizer.cls_id)
    sep = tf.RaggedTensor.from_tensor(one * tokenizer.separator_id)
    question = tf.gather(query, example).with_row_splits_dtype(tf.int64)
    ids = tf.concat([cls, question, sep, piece(context), sep], axis=1)
    prefix = tf.gather(query_length, example) + 2
    segments = tf.concat([tf.zeros_like(tf.ragged.range(prefix)), tf.ones_like(tf.ragged.range(count + 1))], axis=1)
    dense = [None, shape.max_length]

    def offsets(values: tf.RaggedTensor) -> tf.Tensor:
        outside = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(prefix)], tf.constant(NOT_CONTEXT, tf.int64)), tf.cast(prefix, tf.int64))
        return tf.concat([outside, piece(values)], axis=1).to_tensor(NOT_CONTEXT, shape=dense)

    return {TOKEN_IDS: ids.to_tensor(PAD_ID, shape=dense), SEGMENT_IDS: segments.to_tensor(0, shape=dense),
            "starts": offsets(starts), "ends": offsets(ends), "example": example}


def answer_positions(starts: Any, ends: Any, span: tuple[int, int] | None) -> tuple[int, int]:
    """The (start, end) positions of a byte span `[begin, end)` in one window (NumPy offsets as
    `cut_windows` gives them), or (0, 0), `[CLS]`, when the window does not hold all of it or
    there is no span (an unanswerable question), as BERT trains."""
    import numpy as np

    if span is None:
        return 0, 0
    begin, end = span
    inside = starts >= 0
    if not inside.any() or starts[inside].min() > begin or ends[inside].max() < end:
        return 0, 0
    first = int(np.argmax(inside & (ends > begin)))
    last = int(len(starts) - 1 - np.argmax((inside & (starts < end))[::-1]))
    return first, max(first, last)
