"""Classification: confusion matrix, per-class scores, calibration, the most confident mistakes,
and attention heatmaps for models that have attention to show (the `predict --explain` path)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kbuild.report import figures, scores
from kbuild.report.content import Figure, Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext


def predicted_probabilities(run: LoadedRun) -> dict:
    """Texts, gold label ids and predicted probabilities of the split's first examples."""
    labels = run.bundle.labels
    ids = {label: i for i, label in enumerate(labels)}
    examples = run.examples
    probabilities = np.asarray(run.predict(run.model, "predicted"), np.float64)[: len(examples)]
    return {
        "labels": labels,
        "texts": [example.text for example in examples],
        "gold": [ids[example.label] for example in examples],
        "probabilities": np.round(probabilities, 6).tolist(),
    }


def explained(run: LoadedRun, count: int) -> dict:
    """The `explain` signature's output (each token's attention weight) for the first `count`
    examples; no examples when the model has no attention to show."""
    import tensorflow as tf

    from kbuild.tasks import TASKS

    task = TASKS.get(run.spec.task)
    explain = task.serving_functions(run.model, run.bundle, run.spec).get("explain")
    if explain is None or not count:
        return {"examples": []}
    examples = run.examples[:count]
    texts = [example.text for example in examples]
    outputs = {name: np.asarray(value) for name, value in explain(tf.constant(texts, tf.string)).items()}
    rows = task.to_rows(texts, outputs, run.bundle.labels)
    return {"examples": [{"text": row["text"], "gold": example.label, "predicted": row["label"],
                          "attention": row["attention"]} for row, example in zip(rows, examples, strict=True)]}


class Predictions:
    """The cached probabilities of one run, with the decisions derived from them."""

    def __init__(self, data: dict):
        self.labels: list[str] = data["labels"]
        self.texts: list[str] = data["texts"]
        self.gold = np.asarray(data["gold"], np.int64)
        self.probabilities = np.asarray(data["probabilities"], np.float64).reshape(len(self.texts), len(self.labels))
        self.predicted = self.probabilities.argmax(axis=1) if len(self.texts) else np.zeros(0, np.int64)
        self.confidence = self.probabilities.max(axis=1) if len(self.texts) else np.zeros(0)


def _load(record: RunRecord, context: SectionContext) -> tuple[str, Predictions] | None:
    split = report_split(record)
    if split is None:
        return None
    return split, Predictions(context.cache.get("probabilities", split, predicted_probabilities))


def sections(record: RunRecord, context: SectionContext) -> list[Section]:
    loaded = _load(record, context)
    if loaded is None:
        return [Section("predictions", "Predictions", [Text("The run has no split to predict on.")])]
    split, predictions = loaded
    return [
        confusion_section(split, predictions),
        per_class_section(split, predictions),
        calibration_section(split, predictions, context.options.bins),
        mistakes_section(split, predictions, context.options.mistakes),
        *attention_sections(record, context, split),
    ]


def _scope(split: str, predictions: Predictions) -> str:
    return f"on the {len(predictions.texts):,} examples of the {split} split"


def confusion_section(split: str, predictions: Predictions) -> Section:
    labels = predictions.labels
    matrix = scores.confusion(predictions.gold, predictions.predicted, len(labels))
    normalised = scores.row_normalised(matrix)
    counts = Figure(
        figures.heatmap(matrix.tolist(), labels, labels, "counts", "predicted", "gold"),
        f"Confusion matrix {_scope(split, predictions)}: rows are gold labels, columns predictions.",
        Table(["gold \\ predicted", *labels], [[label, *map(int, row)] for label, row in zip(labels, matrix, strict=True)]),
    )
    rates = Figure(
        figures.heatmap(normalised.tolist(), labels, labels, "row-normalised", "predicted", "gold", fmt="{:.2f}"),
        "The same matrix with each row divided by its total: the diagonal is each class's recall.",
        Table(["gold \\ predicted", *labels], [[label, *map(float, row)] for label, row in zip(labels, normalised, strict=True)]),
    )
    accuracy = float((predictions.gold == predictions.predicted).mean()) if len(predictions.texts) else 0.0
    return Section("confusion", "Confusion matrix", [Text(f"Accuracy {_scope(split, predictions)}: {accuracy:.4f}."),
                                                      counts, rates])


def per_class_section(split: str, predictions: Predictions) -> Section:
    matrix = scores.confusion(predictions.gold, predictions.predicted, len(predictions.labels))
    per_class = scores.class_scores(matrix)
    rows = [[label, s.precision, s.recall, s.f1, s.support] for label, s in zip(predictions.labels, per_class, strict=True)]
    macro = [float(np.mean([getattr(s, k) for s in per_class])) for k in ("precision", "recall", "f1")]
    rows.append(["macro average", *macro, int(sum(s.support for s in per_class))])
    table = Table(["class", "precision", "recall", "f1", "support"], rows, caption=f"Per-class scores {_scope(split, predictions)}.")
    return Section("per-class", "Per-class precision, recall and F1", [table])


def calibration_section(split: str, predictions: Predictions, bins: int) -> Section:
    correct = predictions.gold == predictions.predicted
    # The top probability is never below 1 / classes: bins start there.
    found = scores.calibration(predictions.confidence, correct, bins, low=1.0 / max(len(predictions.labels), 1))
    rows = [[f"{a:.3f}–{b:.3f}", n, c, acc] for a, b, n, c, acc in
            zip(found.edges[:-1], found.edges[1:], found.counts, found.confidence, found.accuracy, strict=True)]
    figure = Figure(
        figures.reliability(found.confidence, found.accuracy, found.counts, found.edges, f"ECE {found.ece:.4f}"),
        f"Reliability diagram {_scope(split, predictions)}: accuracy per bin of the top probability. Bars on the "
        f"diagonal mean the probabilities can be trusted; below it, the model is over-confident. "
        f"Expected calibration error (ECE) {found.ece:.4f}.",
        Table(["confidence bin", "examples", "mean confidence", "accuracy"], rows),
    )
    return Section("calibration", "Calibration", [figure])


def mistakes_section(split: str, predictions: Predictions, count: int) -> Section:
    wrong = np.flatnonzero(predictions.gold != predictions.predicted)
    wrong = wrong[np.argsort(-predictions.confidence[wrong], kind="stable")][:count]
    labels = predictions.labels
    rows = [[predictions.texts[i], labels[predictions.gold[i]], labels[predictions.predicted[i]],
             float(predictions.confidence[i])] for i in wrong]
    table = Table(["text", "gold", "predicted", "probability"], rows,
                  caption=f"The {len(rows)} most confident mistakes {_scope(split, predictions)}.")
    return Section("mistakes", "Most confident mistakes", [table if rows else Text("No mistakes on this split.")])


def attention_sections(record: RunRecord, context: SectionContext, split: str) -> list[Section]:
    count = context.options.attention_examples
    data = context.cache.get("attention", split, lambda run: explained(run, count), settings=(count,))
    examples: list[dict[str, Any]] = data["examples"]
    if not examples:
        return []
    strips = [(f"gold {e['gold']}, predicted {e['predicted']}", [t for t, _ in e["attention"]], [w for _, w in e["attention"]])
              for e in examples]
    rows = [[i + 1, token, weight] for i, e in enumerate(examples) for token, weight in e["attention"]]
    figure = Figure(
        figures.token_strips(strips),
        f"Attention each token receives in {len(examples)} {split} examples (attention pooling, or the last "
        "Transformer layer averaged over heads and attending tokens; the weights of one example sum to 1). "
        "Each strip's colours run from its lowest weight (light) to its highest (dark).",
        Table(["example", "token", "weight"], rows),
    )
    return [Section("attention", "Attention", [figure])]


TASK_SECTIONS.register("classification")([sections])
