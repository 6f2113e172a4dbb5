"""Scores of decoded text against its targets, by the names `eval.metrics` gives them.

Each entry declares the result names it writes (what `train.monitor` may select on, with `val_`),
so checking a spec needs neither Keras nor the scorers' packages. The seq2seq task scores its valid
and test translations or summaries with them after training (`Seq2SeqTask.evaluate`), and, when a
monitor names one, the valid split at every epoch end (`kbuild.tasks.decoded_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.spec import Spec

DEFAULT = ("bleu",)
"""What a seq2seq run scores when its spec has no `eval:` section."""


@dataclass(frozen=True)
class DecodedMetric:
    names: tuple[str, ...]
    """The result names `score` returns."""
    score: Callable[[Sequence[str], Sequence[str]], dict[str, float]]
    """(hypotheses, references, one per hypothesis) -> {name: value}."""


DECODED_METRICS: Registry[DecodedMetric] = Registry("metric")


def _bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    from kbuild.tasks.bleu import corpus_bleu

    return corpus_bleu(hypotheses, references).as_dict()


def _rouge_words(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    from kbuild.tasks.rouge import corpus_rouge

    return corpus_rouge(hypotheses, references, tokens="words").as_dict()


def _rouge_chars(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    from kbuild.tasks.rouge import corpus_rouge

    return corpus_rouge(hypotheses, references, tokens="chars").as_dict()


_ROUGE_NAMES = ("rouge1", "rouge2", "rougeL")
DECODED_METRICS.register("bleu")(DecodedMetric(
    ("bleu", "bleu_precision_1", "bleu_precision_2", "bleu_precision_3", "bleu_precision_4",
     "bleu_brevity_penalty", "bleu_length_ratio"), _bleu))
DECODED_METRICS.register("rouge")(DecodedMetric(_ROUGE_NAMES, _rouge_words))
DECODED_METRICS.register("rouge_char")(DecodedMetric(_ROUGE_NAMES, _rouge_chars))


def selected(spec: Spec) -> tuple[str, ...]:
    """The metrics a spec's `eval:` section selects (the default without one)."""
    return DEFAULT if spec.eval is None else tuple(spec.eval.metrics)


def result_names(metrics: Sequence[str]) -> tuple[str, ...]:
    """Every result name the `metrics` write, in order, once each (unknown names skipped: the
    spec checks report them)."""
    names: dict[str, None] = {}
    for metric in metrics:
        if metric in DECODED_METRICS:
            names.update(dict.fromkeys(DECODED_METRICS.get(metric).names))
    return tuple(names)


def score_all(metrics: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Every selected metric's scores of `hypotheses` against `references`, in one dict."""
    results: dict[str, float] = {}
    for metric in metrics:
        results.update(DECODED_METRICS.get(metric).score(hypotheses, references))
    return results
