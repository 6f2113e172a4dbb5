"""Exact match and F1 of predicted answers against reference answers, as the datasets' official
scripts compute them; `qa.metric` picks one by name.

- `squad`: SQuAD v1.1's `evaluate-v1.1.py`: lower-case, drop punctuation (`string.punctuation`)
  and the articles a/an/the, collapse whitespace; F1 over the bag of remaining tokens; the max over
  the references. An unanswerable v2 question's reference is `""`, which only `""` matches (the v2
  script's rule), and HasAns / NoAns scores are reported beside the overall ones.
- `cmrc`: CMRC 2018's `cmrc2018_evaluate.py`: lower-case, drop its punctuation list, cut Chinese
  characters one by one while English words and numbers stay whole; F1 from the longest common
  substring of the two segment lists; EM on the texts without punctuation. The official script
  cuts the non-Chinese runs with `nltk.word_tokenize`; here a regex (`\\w+` runs, each other
  symbol alone) does, which agrees on words and numbers, the cases the metric is about.

Scores are percentages, as the official scripts print them.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kbuild.registry import Registry


@dataclass(frozen=True)
class Scorer:
    """One metric: exact match and F1 of one prediction against one reference, and the tokens F1
    counts in a text (what the report measures an answer's length in)."""

    exact: Callable[[str, str], float]
    f1: Callable[[str, str], float]
    tokens: Callable[[str], list[str]]


SCORERS: Registry[Scorer] = Registry("QA metric")


# --- SQuAD -------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_squad(text: str) -> str:
    """`evaluate-v1.1.py`'s normalize_answer."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _squad_exact(prediction: str, reference: str) -> float:
    return float(normalize_squad(prediction) == normalize_squad(reference))


def _squad_f1(prediction: str, reference: str) -> float:
    predicted, gold = normalize_squad(prediction).split(), normalize_squad(reference).split()
    if not predicted or not gold:  # the v2 script: an empty answer scores 1 only against an empty one
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_tokens(text: str) -> list[str]:
    """The words F1 counts: normalised (articles and punctuation gone), split on whitespace."""
    return normalize_squad(text).split()


SCORERS.register("squad")(Scorer(_squad_exact, _squad_f1, squad_tokens))


# --- CMRC 2018 ---------------------------------------------------------------------------------
_CMRC_PUNCTUATION = {"-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”",
                     "；", "’", "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"}
_CHINESE = re.compile(r"[\u4e00-\u9fa5]")
_WORDS = re.compile(r"\w+|[^\w\s]")


def cmrc_segments(text: str) -> list[str]:
    """`mixed_segmentation(text, rm_punc=True)`: Chinese characters alone, other runs cut into words."""
    segments, run = [], ""
    for char in text.lower().strip():
        if char in _CMRC_PUNCTUATION:
            continue
        if _CHINESE.match(char):
            segments.extend(_WORDS.findall(run))
            run = ""
            segments.append(char)
        else:
            run += char
    return segments + _WORDS.findall(run)


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def _cmrc_exact(prediction: str, reference: str) -> float:
    def strip(text: str) -> str:
        return "".join(ch for ch in text.lower().strip() if ch not in _CMRC_PUNCTUATION)

    return float(strip(prediction) == strip(reference))


def _cmrc_f1(prediction: str, reference: str) -> float:
    predicted, gold = cmrc_segments(prediction), cmrc_segments(reference)
    common = _longest_common_substring(gold, predicted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


SCORERS.register("cmrc")(Scorer(_cmrc_exact, _cmrc_f1, cmrc_segments))


# --- over a split ------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuestionScore:
    """One question's exact match and F1 (0 to 1, the max over its references) and whether any
    reference is an answer (a v2 question whose one reference is `""` is not)."""

    exact: float
    f1: float
    answerable: bool


def question_scores(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[QuestionScore]:
    """Each question's score against all its references (an empty reference list counts as `""`)."""
    scorer = SCORERS.get(metric)
    scores = []
    for prediction, golds in zip(predictions, references, strict=True):
        golds = list(golds) or [""]
        scores.append(QuestionScore(max(scorer.exact(prediction, gold) for gold in golds),
                                    max(scorer.f1(prediction, gold) for gold in golds),
                                    any(gold for gold in golds)))
    return scores


def summarize(scores: Sequence[QuestionScore]) -> dict[str, float]:
    """`exact_match` and `f1` (percent, averaged over questions); with unanswerable questions, also
    `has_ans_*` / `no_ans_*`. The report's breakdowns average subsets the same way."""
    result = {"exact_match": _mean([s.exact for s in scores]), "f1": _mean([s.f1 for s in scores])}
    if not all(s.answerable for s in scores):
        for name, keep in (("has_ans", True), ("no_ans", False)):
            result[f"{name}_exact_match"] = _mean([s.exact for s in scores if s.answerable == keep])
            result[f"{name}_f1"] = _mean([s.f1 for s in scores if s.answerable == keep])
    return result


def score(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """`exact_match` and `f1` (percent, the max over each question's references, averaged over
    questions); with unanswerable questions (a reference `""`), also `has_ans_*` / `no_ans_*`."""
    return summarize(question_scores(metric, predictions, references))


def _mean(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0
