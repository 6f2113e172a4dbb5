"""Predictions for raw texts from a run folder or an exported SavedModel (same answers for both)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbuild.errors import KbuildError
from kbuild.tasks import TASKS


class Predictor:
    """Calls a serving function (strings in, named tensors out) batch by batch."""

    def __init__(self, function: Any, task: str, labels: list[str]):
        self.function, self.task, self.labels = function, TASKS.get(task), labels

    def predict(self, texts: list[str], batch_size: int = 64, explain: bool = False) -> Iterator[dict]:
        """One JSON-ready row per text; `explain` adds each token's attention weight (models
        with `model.pooling: attention`), which rows otherwise leave out."""
        import tensorflow as tf

        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            outputs = self.function(tf.constant(batch, dtype=tf.string))
            numpy = {name: value.numpy() for name, value in outputs.items()}
            if explain and "attention" not in numpy:
                raise KbuildError("--explain needs a model whose pooling is attention (model.pooling: attention)")
            for row in self.task.to_rows(batch, numpy, self.labels):
                if not explain:
                    row.pop("attention", None)
                yield row


def load_predictor(path: str | os.PathLike) -> Predictor:
    """A predictor for a SavedModel folder (has saved_model.pb) or a trained run folder."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return _from_savedmodel(path)
    if (path / "spec.yaml").is_file():
        from kbuild.exporter.serving import load_servable

        servable = load_servable(str(path))
        return Predictor(servable.function, servable.spec.task, servable.labels)
    raise KbuildError(f"{path}: neither a SavedModel export (no saved_model.pb) nor a run folder (no spec.yaml)")


def _from_savedmodel(path: Path) -> Predictor:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tf-text ops the graph may use)

    from kbuild.exporter.savedmodel import read_metadata

    metadata = read_metadata(path)
    if not metadata:
        raise KbuildError(f"{path}: no metadata.json; was this exported by kbuild?")
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    return Predictor(lambda texts: serve(text=texts), metadata["task"], metadata["labels"])


def predict(model_dir: str | os.PathLike, texts: list[str], batch_size: int = 64) -> list[dict]:
    """Predictions for `texts` (API twin of `kbuild predict`)."""
    return list(load_predictor(model_dir).predict(texts, batch_size=batch_size))
