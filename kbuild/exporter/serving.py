"""The serving function: raw strings -> tokenizer (in graph) -> model -> task outputs.

Shared by the SavedModel exporter and by `kbuild predict` on a run folder, so a run and its export
answer identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kbuild.spec import Spec, load_spec
from kbuild.tasks import TASKS
from kbuild.training.run_folder import RunFolder, open_run

INPUT_NAME = "text"


@dataclass
class Servable:
    """A trained run ready to serve: spec, tokenizer, labels, model and the serving tf.function."""

    folder: RunFolder
    spec: Spec
    tokenizer: Any
    labels: list[str]
    model: Any
    function: Any

    def trackables(self) -> list[Any]:
        return [self.model, *self.tokenizer.trackables()]


def load_servable(run: str) -> Servable:
    import tensorflow as tf

    from kbuild.data import load_bundle
    from kbuild.training.fit import load_trained_model

    folder = open_run(run)
    spec = load_spec(folder.spec)
    assets = load_bundle(spec, folder.assets, splits=())
    tokenizer, labels = assets.tokenizer, assets.labels
    model = load_trained_model(folder)
    task = TASKS.get(spec.task)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(text):
        return task.serve(text, tokenizer, model, labels, spec)

    return Servable(folder, spec, tokenizer, labels, model, serve)
