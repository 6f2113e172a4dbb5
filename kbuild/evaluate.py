"""Metrics of a trained run on one split (or a labelled file), reusing the run's saved vocabularies."""

from __future__ import annotations

import os

from kbuild.errors import KbuildError
from kbuild.spec import load_spec
from kbuild.train.run_folder import open_run

SPLITS = ("train", "valid", "test")


def evaluate(run: str | os.PathLike, split: str = "valid", data_file: str | None = None) -> dict[str, float]:
    """Metrics of the best model of `run` on `split`, or on `data_file` (same format and columns)."""
    from kbuild.data import build as build_data
    from kbuild.train.fit import load_trained_model

    if split not in SPLITS:
        raise KbuildError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = open_run(run)
    spec = load_spec(folder.spec)
    if data_file:
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"test": data_file})})
        split = "test"
    bundle = build_data(spec, assets_dir=folder.assets, splits=(split,), reuse_assets=True)
    if split not in bundle.datasets:
        raise KbuildError(f"the run's spec has no {split} split (data.{split} is not set)")
    model = load_trained_model(folder)
    metrics = model.evaluate(bundle.datasets[split], verbose=0, return_dict=True)
    return {name: round(float(value), 6) for name, value in metrics.items()}
