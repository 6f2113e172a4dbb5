"""Entity-level precision, recall and F1 counted exactly as the CoNLL `conlleval` script counts.

A chunk (entity) starts and ends by conlleval's `startOfChunk` / `endOfChunk` rules, so ill-formed
predictions (`I-X` after `O`, a type change inside an entity) are read the way the shared-task
scores were. A predicted chunk is correct when a gold chunk has the same start, end and type.
conlleval predates BIOES and BMES and knows no `S-` or `M-`: sequences are mapped to BIO first
(`S-`->`B-`, `E-` and `M-`->`I-`), which keeps every well-formed entity. Plain Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Chunk = tuple[int, int, str]
"""(first token, last token, type)."""


def _parts(tag: str) -> tuple[str, str]:
    # conlleval: /^([^-]*)-(.*)$/ gives prefix and type; a tag without "-" is all prefix.
    prefix, dash, kind = tag.partition("-")
    if not dash:
        return tag, ""
    return {"S": "B", "E": "I", "M": "I"}.get(prefix, prefix), kind


def _end_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (
        (prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
        or (prev not in ("O", ".") and prev_type != kind)
        or prev in ("[", "]")
    )


def _start_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (
        (prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
        or (tag not in ("O", ".") and prev_type != kind)
        or tag in ("[", "]")
    )


def chunks(tags: Sequence[str]) -> list[Chunk]:
    """The entities in one sentence's tags, as conlleval delimits them."""
    found: list[Chunk] = []
    prev, prev_type, start = "O", "", None
    for i, tag in enumerate([*tags, "O"]):  # conlleval closes every sentence with an O boundary
        prefix, kind = _parts(tag)
        if start is not None and _end_of_chunk(prev, prefix, prev_type, kind):
            found.append((start, i - 1, prev_type))
            start = None
        if _start_of_chunk(prev, prefix, prev_type, kind):
            start = i
        prev, prev_type = prefix, kind
    return found


@dataclass
class EntityScores:
    """Counts over a corpus; `report()` gives conlleval's figures (as fractions, not percents)."""

    correct: Counter
    predicted: Counter
    gold: Counter
    tokens: int = 0
    correct_tokens: int = 0

    def report(self) -> dict:
        """precision, recall, f1, token_accuracy, and per_type: {TYPE: {precision, recall, f1,
        support}} for every type seen in gold or predictions."""
        total = _prf(sum(self.correct.values()), sum(self.predicted.values()), sum(self.gold.values()))
        per_type = {
            kind: {**_prf(self.correct[kind], self.predicted[kind], self.gold[kind]), "support": self.gold[kind]}
            for kind in sorted(set(self.gold) | set(self.predicted))
        }
        accuracy = self.correct_tokens / self.tokens if self.tokens else 0.0
        return {**total, "token_accuracy": accuracy, "per_type": per_type}


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def score(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]) -> EntityScores:
    """Score sentences of predicted tags against gold tags (same lengths, sentence by sentence)."""
    result = EntityScores(Counter(), Counter(), Counter())
    for i, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {i}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
        gold_chunks, predicted_chunks = set(chunks(gold_tags)), set(chunks(predicted_tags))
        result.gold.update(kind for _, _, kind in gold_chunks)
        result.predicted.update(kind for _, _, kind in predicted_chunks)
        result.correct.update(kind for _, _, kind in gold_chunks & predicted_chunks)
        result.tokens += len(gold_tags)
        result.correct_tokens += sum(g == p for g, p in zip(gold_tags, predicted_tags, strict=True))
    return result
