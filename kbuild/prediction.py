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

    def predict(self, texts: list[str], batch_size: int = 64) -> Iterator[dict]:
        import tensorflow as tf

        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            outputs = self.function(tf.constant(batch, dtype=tf.string))
            numpy = {name: value.numpy() for name, value in outputs.items()}
            yield from self.task.to_rows(batch, numpy, self.labels)


def load_predictor(path: str | os.PathLike) -> Predictor:
    """A predictor for a trained run folder (has spec.yaml), an export's model folder (its highest
    version) or one version folder."""
    from kbuild.exporter.layout import NotAnExport, resolve_version

    path = Path(path)
    if (path / "spec.yaml").is_file():
        from kbuild.exporter.serving import load_servable

        servable = load_servable(str(path))
        return Predictor(servable.function, servable.spec.task, servable.labels)
    try:
        version = resolve_version(path)
    except NotAnExport:
        raise KbuildError(f"{path}: neither a run folder (no spec.yaml) nor an export "
                          "(no numbered version folder with saved_model.pb)") from None
    return _from_savedmodel(version)


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
