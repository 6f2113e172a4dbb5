"""Corpus BLEU exactly as sacrebleu computes it by default (13a tokenisation, case-sensitive,
exponential smoothing, n-grams up to 4), in plain Python.

Why not import sacrebleu: it is a command-line tool with its own dependencies (lxml, portalocker,
tabulate, colorama) for what is sixty lines of arithmetic, and evaluation must not depend on it;
tests cross-check this module against sacrebleu on fixed sentences.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ORDER = 4

# The 13a (mteval-v13a) rules, as sacrebleu's TokenizerRegexp applies them, in order.
_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols and punctuation
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... or before one
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)


def tokenize_13a(line: str) -> str:
    """mteval-v13a tokenisation: the text BLEU counts n-grams over (words joined by one space)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _ngrams(words: list[str]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for n in range(1, MAX_ORDER + 1) for i in range(len(words) - n + 1))


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU on a 0-100 scale, with the parts sacrebleu reports."""

    score: float
    precisions: tuple[float, ...]
    """Modified n-gram precisions (0-100), n = 1..4."""
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int

    def as_dict(self) -> dict[str, float]:
        """Flat metrics for results.json: `bleu`, `bleu_precision_1..4`, brevity penalty, length ratio."""
        return {
            "bleu": self.score,
            **{f"bleu_precision_{n}": p for n, p in enumerate(self.precisions, 1)},
            "bleu_brevity_penalty": self.brevity_penalty,
            "bleu_length_ratio": self.hypothesis_length / self.reference_length if self.reference_length else 0.0,
        }


def reference_streams(hypotheses: Sequence[str],
                      references: Sequence[str] | Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """`references` as a list of streams (one reference per hypothesis each): a plain list of
    strings is one stream.

    Raises:
        ValueError: a reference stream whose length differs from the hypotheses'.
    """
    streams = [references] if references and isinstance(references[0], str) else list(references)
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but a reference stream of {len(stream)}")
    return streams


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> BleuScore:
    """BLEU of `hypotheses` against one reference each (a list of strings), or several (a list
    of reference streams, each as long as `hypotheses`, as sacrebleu takes them).

    Raises:
        ValueError: a reference stream whose length differs from the hypotheses'.
    """
    streams = reference_streams(hypotheses, references)
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    hypothesis_length = reference_length = 0
    for i, hypothesis in enumerate(hypotheses):
        words = tokenize_13a(hypothesis).split()
        refs = [tokenize_13a(stream[i]).split() for stream in streams]
        hypothesis_length += len(words)
        # The closest reference length; ties go to the shorter one.
        reference_length += min((abs(len(ref) - len(words)), len(ref)) for ref in refs)[1]
        clip: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            clip |= _ngrams(ref)
        for gram, count in _ngrams(words).items():
            n = len(gram) - 1
            total[n] += count
            correct[n] += min(count, clip[gram])
    return _score(correct, total, hypothesis_length, reference_length)


def _score(correct: list[int], total: list[int], hypothesis_length: int, reference_length: int) -> BleuScore:
    precisions = [0.0] * MAX_ORDER
    smooth = 1.0
    for n in range(MAX_ORDER):
        if total[n] == 0:
            break
        if correct[n] == 0:
            # sacrebleu's default 'exp' smoothing: 1/2, 1/4, ... of a match for empty orders.
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    if hypothesis_length == 0:
        penalty = 0.0
    elif hypothesis_length < reference_length:
        penalty = math.exp(1 - reference_length / hypothesis_length)
    else:
        penalty = 1.0
    log_mean = sum(math.log(p) if p > 0 else -9999999999.0 for p in precisions) / MAX_ORDER
    return BleuScore(penalty * math.exp(log_mean), tuple(precisions), penalty, hypothesis_length, reference_length)
