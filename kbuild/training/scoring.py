"""The final scores of a trained run: its saved best model on every split, valid and test in full and
train on a sample (`eval.train_sample`), with the rows each read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbuild.runs import RunFolder, load_trained_model, round_metrics
from kbuild.spec import Spec
from kbuild.tasks import TASKS


@dataclass
class FinalScores:
    """Metrics per split, and per split the rows scored `{"rows": n, "of": total}` (results.json's
    `scored_rows`: a train sample says so)."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self) -> str:
        """One log line: the splits scored, a sampled one with its share."""
        parts = [f"{split} {n['rows']:,}" + (f" of {n['of']:,} (eval.train_sample)" if n["rows"] < n["of"] else "")
                 for split, n in self.rows.items() if n["rows"]]
        return "scored " + ", ".join(parts) + " rows"


def evaluate_splits(folder: RunFolder, bundle: Any, spec: Spec) -> FinalScores:
    """Metrics of the saved best model on every split the bundle has (the task decides which):
    valid and test in full, train on `eval.train_sample` rows of it."""
    from kbuild.tasks.bundle import scoring_bundle

    best = load_trained_model(folder)
    task = TASKS.get(spec.task)
    scores = FinalScores()
    for split in bundle.datasets:
        if split == "train" and spec.evaluation.train_sample == 0:
            scores.rows[split] = {"rows": 0, "of": len(bundle.examples[split])}
            continue
        scored = scoring_bundle(bundle, spec, split)
        scores.metrics[split] = round_metrics(task.evaluate(best, scored, split, spec))
        scores.rows[split] = {"rows": len(scored.examples[split]), "of": len(bundle.examples[split])}
    return scores
