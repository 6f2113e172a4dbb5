"""SQuAD and CMRC 2018 exact match / F1 against the official scripts' logic, span decoding
(n best per window, merged over a question's windows) and the span loss."""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
import pytest

from kbuild.tasks.qa_scoring import score

# --- the official evaluate-v1.1.py, verbatim but for formatting -------------------------------


def _official_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_f1(prediction, ground_truth):
    prediction_tokens = _official_normalize(prediction).split()
    ground_truth_tokens = _official_normalize(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _official_em(prediction, ground_truth):
    return _official_normalize(prediction) == _official_normalize(ground_truth)


PAIRS = [
    ("the Denver Broncos", ["Denver Broncos", "The Broncos"]),
    ("Broncos, of Denver", ["Denver Broncos"]),
    ("in 1889.", ["1889"]),
    ("An apple a day", ["apple day", "an orange"]),
    ("Santa Clara, California", ["Levi's Stadium", "Santa Clara"]),
    ("", ["Paris"]),
    ("left-wing", ["left wing"]),
]


def test_squad_scores_equal_the_official_script_on_every_pair():
    predictions, references = zip(*PAIRS, strict=True)
    ours = score("squad", predictions, references)
    em = 100 * np.mean([max(_official_em(p, g) for g in golds) for p, golds in PAIRS])
    f1 = 100 * np.mean([max(_official_f1(p, g) for g in golds) for p, golds in PAIRS])
    assert ours == pytest.approx({"exact_match": em, "f1": f1})


def test_squad_v2_scores_unanswerable_questions_apart():
    ours = score("squad", ["", "Paris", "x"], [[""], ["Paris"], [""]])
    assert ours["no_ans_exact_match"] == 50.0 and ours["has_ans_f1"] == 100.0
    assert ours["exact_match"] == pytest.approx(200 / 3)


def test_cmrc_keeps_english_words_and_numbers_whole_and_scores_by_longest_common_substring():
    from kbuild.tasks.qa_scoring import cmrc_segments

    assert cmrc_segments("北京2008年Olympic Games，") == ["北", "京", "2008", "年", "olympic", "games"]
    # Gold 北京奥运会 and prediction 在北京奥运, 5 characters each: common substring 北京奥运 (4).
    ours = score("cmrc", ["在北京奥运"], [["北京奥运会"]])
    precision, recall = 4 / 5, 4 / 5
    assert ours["f1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert score("cmrc", ["《北京》"], [["北京"]])["exact_match"] == 100.0


def test_unknown_metric_in_the_spec_is_a_located_error(write_spec):
    from kbuild import load_spec
    from kbuild.errors import SpecError

    path = write_spec("name: q\ntask: extractive_qa\ndata: {train: x.json, format: squad}\nqa: {metric: bleu}\n")
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert "spec.yaml:4:" in str(error.value) and "qa.metric" in str(error.value) and "squad" in str(error.value)


# --- decoding ----------------------------------------------------------------------------------


def _decode(logits, in_context, **qa):
    from kbuild.spec.qa import QASpec
    from kbuild.tasks.qa_decoding import best_spans

    top, starts, ends = best_spans(np.asarray(logits, np.float32), np.asarray(in_context), QASpec(**qa))
    return top.numpy(), starts.numpy(), ends.numpy()


def test_spans_end_after_they_start_inside_the_context_within_max_answer_length():
    length = 8
    start = np.zeros(length)
    end = np.zeros(length)
    start[[0, 5]] = 9.0   # [CLS] and a late start
    end[[1, 3, 7]] = [8.0, 7.0, 6.0]  # an end before the late start, and one too far
    in_context = np.array([False, True, True, True, True, True, True, False])
    top, starts, ends = _decode([np.stack([start, end], -1)], [in_context], n_best=5, max_answer_length=2)
    assert (ends >= starts).all() and in_context[starts[0]].all() and in_context[ends[0]].all()
    assert (ends - starts < 2).all()
    assert (starts[0, 0], ends[0, 0]) == (5, 5) and top[0, 0] == pytest.approx(9.0)


def test_a_question_keeps_its_best_span_over_all_its_windows():
    import tensorflow as tf

    from kbuild.spec.qa import QASpec
    from kbuild.tasks.qa_decoding import best_spans

    # Window 0 has many good spans, window 1 one better span: a shared top-2 would still find it,
    # and so must n_best=1 per window, merged afterwards.
    logits = np.zeros((2, 6, 2), np.float32)
    logits[0, 1:5, :] = 5.0
    logits[1, 2, :] = [6.0, 6.0]
    in_context = np.ones((2, 6), bool)
    in_context[:, 0] = False
    top, starts, ends = best_spans(tf.constant(logits), tf.constant(in_context), QASpec(n_best=1, max_answer_length=3))
    best = int(np.argmax(top.numpy()[:, 0]))
    assert best == 1 and (starts.numpy()[1, 0], ends.numpy()[1, 0]) == (2, 2)


def test_span_loss_is_the_mean_of_the_start_and_end_cross_entropies():
    import keras

    from kbuild.layers.spans import SpanLoss

    logits = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
    labels = np.array([[1, 2], [0, 0], [4, 4]], np.int32)

    def ce(column, targets):
        shifted = logits[:, :, column] - logits[:, :, column].max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -log_p[np.arange(3), targets]

    expected = np.mean((ce(0, labels[:, 0]) + ce(1, labels[:, 1])) / 2)
    assert float(keras.ops.convert_to_numpy(SpanLoss()(labels, logits))) == pytest.approx(expected, rel=1e-5)
