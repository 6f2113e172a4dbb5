"""Predictions for raw texts from a run folder or an export (same answers for both), streamed
batch by batch so a file of any size runs in constant memory."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kbuild.errors import DataError, KbuildError
from kbuild.tasks import TASKS


class Predictor:
    """Calls a serving function (strings in, named tensors out) batch by batch."""

    def __init__(self, function: Any, task: str, labels: list[str], explainer: Any = None):
        self.function, self.task, self.labels = function, TASKS.get(task), labels
        self.explainer = explainer
        """The `explain` signature (strings in, outputs plus `tokens` and `attention` out), if any."""

    def predict(self, texts: Iterable[str], batch_size: int = 64, explain: bool = False) -> Iterator[dict]:
        """One JSON-ready row per text, in order; `texts` is consumed lazily, `batch_size` at a
        time. `explain` adds each token's attention weight (classifiers with attention pooling or
        a Transformer encoder)."""
        import numpy as np
        import tensorflow as tf

        if explain and self.explainer is None:
            raise KbuildError("--explain needs a classifier with attention: model.pooling: attention, or a "
                              "transformer_encoder block")
        function = self.explainer if explain else self.function
        texts = iter(texts)
        while batch := list(itertools.islice(texts, batch_size)):
            outputs = function(tf.constant(batch, dtype=tf.string))
            numpy = {name: np.asarray(value) for name, value in outputs.items()}
            yield from self.task.to_rows(batch, numpy, self.labels)


def load_predictor(path: str | os.PathLike) -> Predictor:
    """A predictor for a trained run folder (has spec.yaml), an export's model folder (its highest
    version) or one version folder."""
    from kbuild.exporter.layout import NotAnExport, resolve_version

    path = Path(path)
    if (path / "spec.yaml").is_file():
        from kbuild.exporter.serving import load_servable

        servable = load_servable(str(path))
        return Predictor(servable.function, servable.spec.task, servable.labels, servable.functions.get("explain"))
    try:
        version = resolve_version(path)
    except NotAnExport:
        raise KbuildError(f"{path}: neither a run folder (no spec.yaml) nor an export "
                          "(no numbered version folder with saved_model.pb)") from None
    if (version / "saved_model.pb").is_file():
        return _from_savedmodel(version)
    return _from_tflite(version)


def _from_savedmodel(path: Path) -> Predictor:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tf-text ops the graph may use)

    from kbuild.exporter.savedmodel import read_metadata

    metadata = read_metadata(path)
    if not metadata:
        raise KbuildError(f"{path}: no metadata.json; was this exported by kbuild?")
    loaded = tf.saved_model.load(str(path))
    serve, explain = loaded.signatures["serving_default"], loaded.signatures.get("explain")
    return Predictor(lambda texts: serve(text=texts), metadata["task"], metadata["labels"],
                     None if explain is None else (lambda texts: explain(text=texts)))


def _from_tflite(path: Path) -> Predictor:
    from kbuild.exporter.savedmodel import read_metadata
    from kbuild.exporter.tflite import load_tflite

    metadata = read_metadata(path)
    if not metadata:
        raise KbuildError(f"{path}: no metadata.json; was this exported by kbuild?")
    return Predictor(load_tflite(path, metadata), metadata["task"], metadata["labels"])


def predict(model_dir: str | os.PathLike, texts: Iterable[str], batch_size: int = 64) -> list[dict]:
    """Predictions for `texts` (API twin of `kbuild predict`)."""
    return list(load_predictor(model_dir).predict(texts, batch_size=batch_size))


LARGE_INPUT = 10_000
"""Inputs of at least this many lines show progress even when stderr is not a terminal."""


def count_lines(path: str | os.PathLike) -> int:
    """Lines in a file, counted in binary blocks (cheap next to predicting them)."""
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def read_lines(stream: Iterable[bytes], name: str) -> Iterator[str]:
    """Lines of a binary stream decoded as UTF-8 one by one, so that an undecodable byte is a
    `DataError` at its line (a text-mode stream reports a byte offset within a buffer instead)."""
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"not valid UTF-8 text ({error.reason} at byte {error.start} of the line); "
                            "save the file as UTF-8", name, number) from None


def write_predictions(predictor: Predictor, lines: Iterable[str], out, batch_size: int = 64, progress=None,
                      explain: bool = False) -> int:
    """Predict every non-blank line of `lines`, writing one JSON object per line to `out`;
    returns the number of rows written. `progress` (a kbuild.progress.Progress) is advanced per batch."""
    import json

    texts = (line.rstrip("\r\n") for line in lines if line.strip())
    written = 0
    for row in predictor.predict(texts, batch_size=batch_size, explain=explain):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
        if progress is not None and written % batch_size == 0:
            progress.update(batch_size)
    if progress is not None:
        progress.update(written % batch_size)
        progress.close()
    return written
