"""Corpus ROUGE-1/2/L F-measure (Lin 2004) of generated summaries, on BLEU's 0-100 scale.

Two tokenisations, the formulas the same (Google's `rouge-score`, the reimplementation of
ROUGE-1.5.5 that Hugging Face's `evaluate` and the PEGASUS paper report):
- `words`: rouge-score's own tokenizer, lowercased `[a-z0-9]+` words with Porter stemming on,
  as English summarisation papers report ROUGE.
- `chars`: every non-whitespace character one token, case kept: the usual convention for
  Chinese, and exactly how ../shared/data/csl_title/make.py scores its lead baseline.
  rouge-score's own tokenizer keeps only `[a-z0-9]` and would drop every Chinese character.

Each example gets its F-measures (against the best of its references when it has several:
rouge-score's `score_multi`, per ROUGE type); the corpus score is their mean, the point estimate
rouge-score's `BootstrapAggregator` resamples around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kbuild.tasks.bleu import reference_streams

TYPES = ("rouge1", "rouge2", "rougeL")


class CharTokenizer:
    """rouge-score's tokenizer interface (`tokenize(text) -> tokens`): one token per
    non-whitespace character."""

    def tokenize(self, text: str) -> list[str]:
        return [char for char in text if not char.isspace()]


@dataclass(frozen=True)
class RougeScore:
    """Mean ROUGE F-measures (0-100) over a corpus."""

    rouge1: float
    rouge2: float
    rougeL: float  # noqa: N815  (the name every summarisation table uses)

    def as_dict(self) -> dict[str, float]:
        """Flat metrics for results.json: `rouge1`, `rouge2`, `rougeL`."""
        return {name: getattr(self, name) for name in TYPES}


def scorer(tokens: Literal["words", "chars"]) -> Any:
    """A `rouge_score.rouge_scorer.RougeScorer` for ROUGE-1, -2 and -L over `tokens`."""
    from rouge_score import rouge_scorer

    if tokens == "chars":
        return rouge_scorer.RougeScorer(list(TYPES), tokenizer=CharTokenizer())
    return rouge_scorer.RougeScorer(list(TYPES), use_stemmer=True)


def corpus_rouge(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]],
                 tokens: Literal["words", "chars"] = "words") -> RougeScore:
    """ROUGE of `hypotheses` against one reference each (a list of strings), or several (a list
    of reference streams, each as long as `hypotheses`, as `corpus_bleu` takes them).

    Raises:
        ValueError: a reference stream whose length differs from the hypotheses'.

    Examples:
    >>> corpus_rouge(["the cats sat"], ["the cat sat down"]).rouge1  # stemmed: cats = cat
    85.71428571428571
    """
    streams = reference_streams(hypotheses, references)
    rouge = scorer(tokens)
    totals = dict.fromkeys(TYPES, 0.0)
    for i, hypothesis in enumerate(hypotheses):
        scores = rouge.score_multi([stream[i] for stream in streams], hypothesis)
        for name in TYPES:
            totals[name] += scores[name].fmeasure
    count = max(len(hypotheses), 1)
    return RougeScore(**{name: 100.0 * total / count for name, total in totals.items()})
