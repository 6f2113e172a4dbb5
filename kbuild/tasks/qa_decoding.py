"""Raw (question, context) pairs -> answers, inside one TensorFlow graph: cut the contexts into
windows (`kbuild.data.qa_windows`), run the model over the windows a few at a time, take the n best
spans of each window and keep each question's best over all its windows.

Each window's spans are scored as start logit + end logit over a band `[start, start +
max_answer_length)`, both ends inside the context, so the n best of a window are exact (no top-k of
starts and of ends taken apart first), and every window contributes its n best before the merge, so
a question's best span is never lost because another window filled a shared top list
(huggingface/transformers#39193). The model runs over `WINDOW_BATCH` windows at a time in a
`tf.map_fn`, so a very long context costs time, not memory. A run trained on bucketed batches
(`preprocess.bucketing`, so its model reads any padded length the same) also answers with its windows
cut to the longest one of the call, rounded up to `TRIM_MULTIPLE`: a SQuAD paragraph is about 150
pieces of the 384 every window was padded to.

The same function serves the SavedModel's `serving_default` and evaluation, so a run's scores are
those of its export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tensorflow as tf

from kbuild.data.qa_windows import WindowShape, cut_windows
from kbuild.data.tokenizers.base import PAD_ID
from kbuild.names import SEGMENT_IDS, TOKEN_IDS

if TYPE_CHECKING:
    from kbuild.data.tokenizers import Tokenizer
    from kbuild.spec.qa import QASpec

WINDOW_BATCH = 32
"""Windows per model call inside the graph: bounds the memory a long context needs."""
NEGATIVE = float("-inf")
TRIM_MULTIPLE = 32
"""Trimmed windows keep a multiple of this many positions."""


def window_logits(model: Any, features: dict[str, tf.Tensor], max_length: int, trim: bool = False) -> tf.Tensor:
    """The model's span logits `[windows, max_length, 2]`, at most `WINDOW_BATCH` windows per
    call (fewer windows run as one call, unpadded). `trim`: the model reads only the positions up
    to the longest window's end (rounded up to `TRIM_MULTIPLE`); the rest, padding, get logits 0."""
    count = tf.shape(features[TOKEN_IDS])[0]
    size = tf.maximum(tf.minimum(count, WINDOW_BATCH), 1)
    chunks = (count + size - 1) // size
    padding = chunks * size - count
    width = max_length
    if trim:
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(features[TOKEN_IDS] != PAD_ID, tf.int32), axis=1))
        width = tf.minimum(max_length, tf.maximum(1, (longest + TRIM_MULTIPLE - 1) // TRIM_MULTIPLE) * TRIM_MULTIPLE)

    def batched(values: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.pad(values[:, :width], [[0, padding], [0, 0]]), [chunks, size, width])

    inputs = {name: batched(features[name]) for name in (TOKEN_IDS, SEGMENT_IDS)}
    logits = tf.map_fn(lambda batch: tf.cast(model(batch, training=False), tf.float32), inputs,
                       fn_output_signature=tf.TensorSpec([None, None, 2], tf.float32),
                       parallel_iterations=1)
    logits = tf.reshape(logits, [-1, width, 2])[:count]
    return tf.ensure_shape(tf.pad(logits, [[0, 0], [0, max_length - width], [0, 0]]), [None, max_length, 2])


def best_spans(logits: tf.Tensor, in_context: tf.Tensor, qa: QASpec) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(scores, starts, ends) of each window's `qa.n_best` spans, `[windows, n_best]`, best first;
    a window without context scores -inf."""
    length = logits.shape[1]
    band = min(qa.max_answer_length, length)
    start, end = logits[:, :, 0], logits[:, :, 1]
    ends = tf.pad(end, [[0, 0], [0, band]], constant_values=NEGATIVE)
    inside = tf.pad(in_context, [[0, 0], [0, band]], constant_values=False)
    # [windows, start position, answer length - 1]
    end_scores = tf.stack([ends[:, d:d + length] for d in range(band)], axis=-1)
    valid = in_context[:, :, None] & tf.stack([inside[:, d:d + length] for d in range(band)], axis=-1)
    scores = tf.where(valid, start[:, :, None] + end_scores, NEGATIVE)
    top, index = tf.math.top_k(tf.reshape(scores, [-1, length * band]), k=min(qa.n_best, length * band))
    starts = index // band
    return top, starts, starts + index % band


def answer_graph(tokenizer: Tokenizer, model: Any, shape: WindowShape, qa: QASpec, trim: bool = False):
    """`answer(questions, contexts)` (strings `[batch]`) -> `answer` (string), `score` (start +
    end logit; the null score's margin when it answers `""`), `start` and `end` (int32 character
    offsets into the context, `context[start:end] == answer`). `trim`: see `window_logits`."""

    def answer(questions: tf.Tensor, contexts: tf.Tensor) -> dict[str, tf.Tensor]:
        windows = cut_windows(tokenizer, shape, questions, contexts)
        logits = window_logits(model, windows, shape.max_length, trim)
        in_context = windows["starts"] >= 0
        top, starts, ends = best_spans(logits, in_context, qa)
        batch, per_window = tf.size(questions), tf.shape(top)[1]
        # Windows of a question are consecutive: their candidates form one row per question.
        owner = tf.repeat(windows["example"], per_window)
        candidates = tf.RaggedTensor.from_value_rowids(tf.reshape(top, [-1]), owner, nrows=batch)
        pick = tf.cast(candidates.row_splits[:-1], tf.int32) + tf.cast(
            tf.argmax(candidates.to_tensor(NEGATIVE), axis=1, output_type=tf.int32), tf.int32)
        pick = tf.minimum(pick, tf.size(top) - 1)
        score = tf.gather(tf.reshape(top, [-1]), pick)
        window = pick // per_window
        first = tf.gather(tf.reshape(starts, [-1]), pick)
        last = tf.gather(tf.reshape(ends, [-1]), pick)
        begin = tf.gather_nd(windows["starts"], tf.stack([window, first], axis=1))
        finish = tf.gather_nd(windows["ends"], tf.stack([window, last], axis=1))
        found = tf.math.is_finite(score)
        if qa.null_threshold is not None:
            null = tf.math.unsorted_segment_min(logits[:, 0, 0] + logits[:, 0, 1], windows["example"], batch)
            margin = null - score
            found &= margin <= qa.null_threshold
            score = tf.where(found, score, margin)
        begin = tf.where(found, begin, 0)
        finish = tf.where(found, finish, 0)
        text = tf.strings.substr(contexts, begin, finish - begin)
        start = tf.strings.length(tf.strings.substr(contexts, tf.zeros_like(begin), begin), unit="UTF8_CHAR")
        return {"answer": text, "score": tf.where(tf.math.is_finite(score), score, 0.0),
                "start": start, "end": start + tf.strings.length(text, unit="UTF8_CHAR")}

    return answer


def predict_spans(answer: Any, questions: list[str], contexts: list[str], batch_size: int = 64) -> list[dict]:
    """Every output of `answer` (an `answer_graph` wrapped in a tf.function) for whole columns, one
    dict per question: `answer`, `score`, and `start` / `end` (character offsets into its context).
    Questions are answered shortest first, so a call's windows are of similar lengths (`trim`)."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]) + len(contexts[i]))
    rows: dict[int, dict] = {}
    for begin in range(0, len(order), batch_size):
        chunk = order[begin:begin + batch_size]
        out = answer(tf.constant([questions[i] for i in chunk]), tf.constant([contexts[i] for i in chunk]))
        rows.update({i: {"answer": text.decode("utf-8"), "score": float(score), "start": int(start), "end": int(end)}
                     for i, text, score, start, end in zip(chunk, out["answer"].numpy(), out["score"].numpy(),
                                                           out["start"].numpy(), out["end"].numpy(), strict=True)})
    return [rows[i] for i in range(len(questions))]


def predict_answers(answer: Any, questions: list[str], contexts: list[str], batch_size: int = 64) -> list[str]:
    """The answers of `answer` for whole columns (the texts of `predict_spans`)."""
    return [row["answer"] for row in predict_spans(answer, questions, contexts, batch_size)]
