"""The final scores of a trained run: its saved best model on every split, valid and test in full and
train on a sample (`eval.train_sample`), with the rows each read."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbuild.runs import RunFolder, load_saved_weights, load_trained_model, round_metrics
from kbuild.spec import Spec
from kbuild.tasks import TASKS


@dataclass
class FinalScores:
    """Metrics per split, and per split the rows scored `{"rows": n, "of": total}` (results.json's
    `scored_rows`: a train sample says so)."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    from_validation: list[str] = field(default_factory=list)
    """Splits whose scores are the saved epoch's validation, not a second pass."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Seconds each scored split's pass took (results.json's `scoring_seconds`; the first one
    includes loading the saved weights)."""

    def describe(self) -> str:
        """One log line: the splits scored, a sampled one with its share."""
        parts = [f"{split} {n['rows']:,}" + (f" of {n['of']:,} (eval.train_sample)" if n["rows"] < n["of"] else "")
                 + (" (the saved epoch's validation)" if split in self.from_validation else "")
                 for split, n in self.rows.items() if n["rows"]]
        return "scored " + ", ".join(parts) + " rows"


def evaluate_splits(folder: RunFolder, bundle: Any, spec: Spec, saved_logs: dict | None = None,
                    log: Callable[[str], None] = lambda message: None, trained: Any = None,
                    trained_is_saved: bool = False) -> FinalScores:
    """Metrics of the saved best model on every split the bundle has (the task decides which):
    valid and test in full, train on `eval.train_sample` rows of it. `saved_logs`, the logs of the
    epoch model.keras was saved at, give valid's scores where the task says they are exact
    (`Task.scores_from_validation`): an LLM's valid pass is minutes, and the model's load too.
    `log` hears of each split before its pass (a QA or LLM split takes minutes). `trained`: the
    model training left in memory, compiled as model.keras records it; model.keras's weights are
    loaded into it, and its traced functions (the validation step, a tagger's scorer) serve again;
    `trained_is_saved`: its weights are model.keras's already (saved at its last step), nothing is
    read. Without it the saved model is loaded and traced anew."""
    import functools

    from kbuild.tasks.bundle import scoring_bundle

    def saved_model() -> Any:
        if trained is None:
            return load_trained_model(folder)
        return trained if trained_is_saved else load_saved_weights(trained, folder)

    best = functools.cache(saved_model)
    task = TASKS.get(spec.task)
    scores = FinalScores()
    for split in bundle.datasets:
        if split == "train" and spec.evaluation.train_sample == 0:
            scores.rows[split] = {"rows": 0, "of": len(bundle.examples[split])}
            continue
        scored = scoring_bundle(bundle, spec, split)
        logged = (task.scores_from_validation(saved_logs, scored, split, spec)
                  if split == "valid" and saved_logs is not None else None)
        if logged is None:
            started = time.perf_counter()
            log(f"scoring {split}: {len(scored.examples[split]):,} rows with the saved model")
            logged = task.evaluate(best(), scored, split, spec)
            scores.seconds[split] = round(time.perf_counter() - started, 2)
            log(f"scored {split} in {scores.seconds[split]:.1f} s")
        else:
            scores.from_validation.append(split)
        scores.metrics[split] = round_metrics(logged)
        scores.rows[split] = {"rows": len(scored.examples[split]), "of": len(bundle.examples[split]),
                              **({"from_validation": True} if split in scores.from_validation else {})}
    return scores
