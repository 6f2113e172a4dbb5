"""Metrics of a trained run on one split (or a labelled file), reusing the run's saved vocabularies."""

from __future__ import annotations

import os

from kbuild.errors import KbuildError
from kbuild.runs import load_trained_model, open_run, round_metrics
from kbuild.tasks import TASKS
from kbuild.tasks.checks import load_spec

SPLITS = ("train", "valid", "test")


def evaluate(run: str | os.PathLike, split: str = "valid", data_file: str | None = None) -> dict:
    """Metrics of the best model of `run` on `split`, or on `data_file` (same format and columns)."""
    from kbuild.tasks.bundle import load_bundle

    if split not in SPLITS:
        raise KbuildError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = open_run(run)
    spec = load_spec(folder.spec)
    files = {split: data_file} if data_file else None
    bundle = load_bundle(spec, folder.assets, splits=(split,), files=files)
    if split not in bundle.datasets:
        raise KbuildError(f"the run's spec has no {split} split (data.{split} is not set); pass --data FILE")
    model = load_trained_model(folder)
    return round_metrics(TASKS.get(spec.task).evaluate(model, bundle, split, spec))
