"""Training extensions (kbuild.training.extensions): one class and one line in EXTENSIONS add a
capability to the loop, which calls its hooks at fixed points; what an extension does with the
random state before the model exists does not move the model's initial weights."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

import kbuild  # noqa: E402
import kbuild.training.extensions as extensions  # noqa: E402
from kbuild.training.extensions import Extension  # noqa: E402


class Recorder(Extension):
    """Records when each hook runs; what a new extension would look like."""

    calls: list[str] = []

    def prepare(self, bundle):
        self.calls.append("prepare")
        return bundle

    def adjust(self, model):
        self.calls.append(f"adjust at step {int(model.optimizer.iterations.numpy())}")

    def callbacks(self, total_steps):
        return [keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self.calls.append(f"epoch {epoch}"))]

    def results(self, metrics, best):
        return {"recorder": {"calls": list(self.calls), "best_layers": len(best().layers), "splits": sorted(metrics)}}


class RandomDraws(Extension):
    """Draws from every global random stream, and builds a model, before the run's model exists."""

    def prepare(self, bundle):
        random.random(), np.random.random(), keras.random.uniform((3,))
        keras.layers.Dropout(0.5), keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        return bundle


def _losses(run) -> list[float]:
    return [row["loss"] for row in map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines())]


def test_an_extension_added_to_the_list_is_called_at_each_point_and_reports_in_results(
        tiny_spec_file, tmp_path, monkeypatch):
    Recorder.calls = []
    monkeypatch.setattr(extensions, "EXTENSIONS", (*extensions.EXTENSIONS, Recorder))
    run = kbuild.train(kbuild.load_spec(tiny_spec_file, ["train.max_steps=null", "train.epochs=2", "data.limit=128"]),
                       run_dir=tmp_path / "run")
    recorded = json.loads((run.path / "results.json").read_text())["recorder"]
    assert recorded["calls"] == ["prepare", "adjust at step 0", "epoch 0", "epoch 1"]
    assert recorded["best_layers"] > 0 and recorded["splits"] == ["test", "train", "valid"]
    # the extensions before it still report (no word vectors, no init_from in this spec)
    assert run.results["pretrained_vectors"] is None and run.results["init_from"] is None


def test_randomness_an_extension_draws_before_the_model_is_built_leaves_the_run_as_it_was(
        tiny_spec_file, tmp_path, monkeypatch):
    spec = kbuild.load_spec(tiny_spec_file, ["model.embedding.dropout=0.3"])
    plain = kbuild.train(spec, run_dir=tmp_path / "plain")
    monkeypatch.setattr(extensions, "EXTENSIONS", (RandomDraws, *extensions.EXTENSIONS))
    drawn = kbuild.train(spec, run_dir=tmp_path / "drawn")
    assert _losses(drawn) == _losses(plain)
