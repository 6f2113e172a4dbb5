"""Metrics of a trained run on one split (or a labelled file), reusing the run's saved vocabularies."""

from __future__ import annotations

import os

from kbuild.errors import KbuildError
from kbuild.runs import load_trained_model, open_run, round_metrics
from kbuild.tasks import TASKS
from kbuild.tasks.checks import load_spec

SPLITS = ("train", "valid", "test")


def evaluate(run: str | os.PathLike, split: str = "valid", data_file: str | None = None,
             train_sample: int | str | None = None) -> dict:
    """Metrics of the best model of `run` on `split`, or on `data_file` (same format and columns).

    The train split is scored on `train_sample` rows of it (a seeded sample; `"all"`: every row),
    by default the run's `eval.train_sample`, as training's final scores were; the result's
    `scored_rows` then says how many of how many rows it read.
    """
    from kbuild.spec.evaluation import TRAIN_SAMPLE
    from kbuild.tasks.bundle import load_bundle, scoring_bundle

    if split not in SPLITS:
        raise KbuildError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = open_run(run)
    spec = load_spec(folder.spec)
    chosen = spec.evaluation.train_sample if train_sample is None else train_sample
    # A run that skipped its final train score (train_sample: 0) is still scored when asked to be.
    spec.eval = spec.evaluation.model_copy(update={"train_sample": chosen or TRAIN_SAMPLE})
    files = {split: data_file} if data_file else None
    bundle = load_bundle(spec, folder.assets, splits=(split,), files=files)
    if split not in bundle.datasets:
        raise KbuildError(f"the run's spec has no {split} split (data.{split} is not set); pass --data FILE")
    scored = bundle if data_file else scoring_bundle(bundle, spec, split)
    model = load_trained_model(folder)
    metrics = round_metrics(TASKS.get(spec.task).evaluate(model, scored, split, spec))
    rows, total = len(scored.examples[split]), len(bundle.examples[split])
    return {**metrics, "scored_rows": {"rows": rows, "of": total}} if rows < total else metrics
