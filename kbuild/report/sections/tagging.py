"""Tagging: per-type precision/recall/F1 (results.json's conlleval scores), entity-type
confusion, and sentences with gold and predicted entities highlighted."""

from __future__ import annotations

from collections import Counter

from kbuild.report import figures
from kbuild.report.content import Figure, Section, Sentence, Sentences, Span, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext
from kbuild.tasks import conlleval

MISSED = "(none)"
"""The row/column of entities with no counterpart: a gold entity the model missed, or a predicted
entity where the gold has none."""


def predicted_tags(run: LoadedRun) -> dict:
    """Words, gold tags and decoded tags of the split's first sentences."""
    from kbuild.tasks import TASKS
    from kbuild.tasks.tagging import decoded_tags

    task = TASKS.get(run.spec.task)
    decoder = task.decoder(run.model, run.spec, run.bundle.labels)
    examples = run.examples
    ids = run.predict(decoder, "tagged")[: len(examples)]
    return {
        "words": [example.text.split() for example in examples],
        "gold": [list(example.label) for example in examples],
        "predicted": decoded_tags(examples, ids, run.bundle.labels),
    }


def sections(record: RunRecord, context: SectionContext) -> list[Section]:
    split = report_split(record)
    result = [per_type_section(record)]
    if split is None:
        return result
    data = context.cache.get("tags", split, predicted_tags)
    return [*result, type_confusion_section(split, data), sentences_section(split, data, context.options.sentences)]


def per_type_section(record: RunRecord) -> Section:
    """Per-type scores exactly as results.json holds them (conlleval over every token)."""
    blocks = []
    for split, metrics in record.metrics.items():
        per_type = metrics.get("per_type") or {}
        if not per_type:
            continue
        rows = [[kind, s.get("precision"), s.get("recall"), s.get("f1"), s.get("support")] for kind, s in sorted(per_type.items())]
        rows.append(["overall", metrics.get("precision"), metrics.get("recall"), metrics.get("f1"),
                     sum(int(s.get("support") or 0) for s in per_type.values())])
        blocks.append(Table(["type", "precision", "recall", "f1", "support"], rows,
                            caption=f"{split}: entity-level scores per type (conlleval rules, from results.json)."))
    return Section("per-type", "Per-type precision, recall and F1", blocks or [Text("results.json has no per-type scores.")])


def type_confusion(gold: list[list[str]], predicted: list[list[str]]) -> tuple[list[str], list[list[int]]]:
    """Entity types x entity types: a gold entity counts in the column of the predicted entity with
    exactly its span (any type), or in `(none)`; a predicted entity whose span no gold entity has
    counts in the `(none)` row."""
    pairs: Counter[tuple[str, str]] = Counter()
    for gold_tags, predicted_tags_ in zip(gold, predicted, strict=True):
        gold_spans = {(s, e): k for s, e, k in conlleval.chunks(gold_tags)}
        predicted_spans = {(s, e): k for s, e, k in conlleval.chunks(predicted_tags_)}
        for span, kind in gold_spans.items():
            pairs[kind, predicted_spans.get(span, MISSED)] += 1
        for span, kind in predicted_spans.items():
            if span not in gold_spans:
                pairs[MISSED, kind] += 1
    kinds = sorted({k for pair in pairs for k in pair} - {MISSED}) + [MISSED]
    return kinds, [[pairs[g, p] for p in kinds] for g in kinds]


def type_confusion_section(split: str, data: dict) -> Section:
    kinds, matrix = type_confusion(data["gold"], data["predicted"])
    figure = Figure(
        figures.heatmap(matrix, kinds, kinds, "entity types", "predicted", "gold"),
        f"Entity-type confusion on {len(data['gold']):,} {split} sentences: a gold entity is counted under the type "
        f"predicted for exactly its span, or under {MISSED} when the model found no entity there; the {MISSED} row "
        "counts predicted entities with no gold entity on their span. Boundary errors count as both.",
        Table(["gold \\ predicted", *kinds], [[kind, *row] for kind, row in zip(kinds, matrix, strict=True)]),
    )
    return Section("entity-confusion", "Entity-type confusion", [figure])


def _spans(words: list[str], tags: list[str]) -> list[Span]:
    """The sentence as runs of plain words and entities."""
    spans, position = [], 0
    for start, end, kind in conlleval.chunks(tags):
        if start > position:
            spans.append(Span(" ".join(words[position:start])))
        spans.append(Span(" ".join(words[start : end + 1]), kind))
        position = end + 1
    if position < len(words):
        spans.append(Span(" ".join(words[position:])))
    return spans


def sentences_section(split: str, data: dict, count: int) -> Section:
    """Sentences with entities, wrong ones first (where the model is worth looking at)."""
    chosen = [i for i, g in enumerate(data["gold"]) if conlleval.chunks(g)]
    wrong = [i for i in chosen if conlleval.chunks(data["gold"][i]) != conlleval.chunks(data["predicted"][i])]
    right = [i for i in chosen if i not in set(wrong)]
    picked = wrong[: (count + 1) // 2] + right[: count // 2]
    picked += [i for i in wrong + right if i not in picked][: count - len(picked)]
    shown = [Sentence(_spans(data["words"][i], data["gold"][i]), _spans(data["words"][i], data["predicted"][i]),
                      i not in set(wrong)) for i in sorted(picked)]
    caption = (f"{len(shown)} {split} sentences with entities, gold above predicted; a red bar marks a sentence "
               f"with an error ({len(wrong):,} of {len(chosen):,} sentences with entities have one).")
    return Section("sentences", "Tagged sentences", [Sentences(shown, caption)])


TASK_SECTIONS.register("tagging")([sections])
