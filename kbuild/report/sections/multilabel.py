"""Multi-label classification: per-label scores at the run's thresholds, a label confusion
(gold label against predicted label), calibration of every per-label probability, and the most
confident mistakes."""

from __future__ import annotations

import numpy as np

from kbuild.report import figures, scores
from kbuild.report.content import Figure, Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext


def predicted_probabilities(run: LoadedRun) -> dict:
    from kbuild.tasks.multilabel import thresholds

    labels = run.bundle.labels
    examples = run.examples
    probabilities = np.asarray(run.predict(run.model, "predicted"), np.float64)[: len(examples)]
    return {"labels": labels, "thresholds": thresholds(run.spec, labels), "texts": [e.text for e in examples],
            "gold": [list(e.label) for e in examples], "probabilities": np.round(probabilities, 6).tolist()}


def sections(record: RunRecord, context: SectionContext) -> list[Section]:
    split = report_split(record)
    if split is None:
        return [Section("predictions", "Predictions", [Text("The run has no split to predict on.")])]
    data = context.cache.get("multilabel", split, predicted_probabilities)
    labels = data["labels"]
    index = {label: i for i, label in enumerate(labels)}
    probabilities = np.asarray(data["probabilities"], np.float64).reshape(len(data["texts"]), len(labels))
    gold = np.zeros(probabilities.shape, bool)
    for row, names in enumerate(data["gold"]):
        gold[row, [index[n] for n in names]] = True
    chosen = probabilities >= np.asarray(data["thresholds"])
    scope = f"on the {len(data['texts']):,} examples of the {split} split"
    return [_per_label(labels, gold, chosen, scope), _confusion(labels, gold, chosen, scope),
            _calibration(probabilities, gold, chosen, scope, context.options.bins),
            _mistakes(data, labels, probabilities, gold, chosen, context.options.mistakes, scope)]


def _per_label(labels, gold, chosen, scope) -> Section:
    rows = []
    for j, label in enumerate(labels):
        matrix = np.array([[np.sum(~gold[:, j] & ~chosen[:, j]), np.sum(~gold[:, j] & chosen[:, j])],
                           [np.sum(gold[:, j] & ~chosen[:, j]), np.sum(gold[:, j] & chosen[:, j])]])
        s = scores.class_scores(matrix)[1]
        rows.append([label, s.precision, s.recall, s.f1, s.support])
    return Section("per-class", "Per-label precision, recall and F1",
                   [Table(["label", "precision", "recall", "f1", "support"], rows, caption=f"At the run's thresholds, {scope}.")])


def _confusion(labels, gold, chosen, scope) -> Section:
    """Examples with gold label i among whose predicted labels is j (the diagonal: found labels)."""
    counts = gold.T.astype(np.int64) @ chosen.astype(np.int64)
    # Divided by each label's gold count (not the row total: an example adds to several columns).
    support = gold.sum(axis=0)[:, None]
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    header = ["gold \\ predicted", *labels]
    return Section("confusion", "Label confusion", [
        Figure(figures.heatmap(counts.tolist(), labels, labels, "counts", "predicted", "gold"),
               f"Examples with the gold label (row) that were predicted the label (column), {scope}; "
               "the diagonal counts labels found.",
               Table(header, [[label, *map(int, row)] for label, row in zip(labels, counts, strict=True)])),
        Figure(figures.heatmap(shares.tolist(), labels, labels, "share of the gold label's examples", "predicted", "gold",
                               fmt="{:.2f}"),
               "The same counts divided by each gold label's number of examples: the diagonal is each label's recall.",
               Table(header, [[label, *map(float, row)] for label, row in zip(labels, shares, strict=True)])),
    ])


def _calibration(probabilities, gold, chosen, scope, bins) -> Section:
    found = scores.calibration(probabilities.reshape(-1), gold.reshape(-1), bins)
    rows = [[f"{a:.2f}–{b:.2f}", n, c, acc] for a, b, n, c, acc in
            zip(found.edges[:-1], found.edges[1:], found.counts, found.confidence, found.accuracy, strict=True)]
    figure = Figure(figures.reliability(found.confidence, found.accuracy, found.counts, found.edges, f"ECE {found.ece:.4f}",
                                        outcome="share gold", xlabel="probability"),
                    f"Reliability of every per-label probability {scope}: the share of (example, label) pairs "
                    f"that are gold, per probability bin. Expected calibration error {found.ece:.4f}.",
                    Table(["probability bin", "pairs", "mean probability", "share gold"], rows))
    return Section("calibration", "Calibration", [figure])


def _mistakes(data, labels, probabilities, gold, chosen, count, scope) -> Section:
    wrong = gold != chosen
    # How sure the model was of its most confident wrong decision on each example.
    sureness = np.where(wrong, np.abs(probabilities - 0.5) * 2, -1).max(axis=1)
    order = [i for i in np.argsort(-sureness, kind="stable") if sureness[i] >= 0][:count]
    rows = [[data["texts"][i], ", ".join(data["gold"][i]), ", ".join(name for name, c in zip(labels, chosen[i], strict=True) if c),
             float(probabilities[i][np.where(wrong[i], np.abs(probabilities[i] - 0.5), -1).argmax()])] for i in order]
    table = Table(["text", "gold", "predicted", "probability of the worst label"], rows,
                  caption=f"The {len(rows)} most confident mistakes {scope}.")
    return Section("mistakes", "Most confident mistakes", [table if rows else Text("No mistakes on this split.")])


TASK_SECTIONS.register("multilabel")([sections])
