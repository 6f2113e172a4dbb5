"""Predictions for raw texts from a run folder or an export (same answers for both), streamed
batch by batch so an input of any size, from a file or a pipe, runs in constant memory. What the
rows look like (plain lines, JSON lines, csv/tsv) is `kbuild.prediction.rows`'s job."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.errors import DataError, KbuildError
from kbuild.names import TEXT_INPUT
from kbuild.prediction.rows import BadRow
from kbuild.tasks import TASKS


class Predictor:
    """Calls a serving function (strings by input name in, named tensors out) batch by batch.

    Args:
        function: `{input name: tf.string [batch]}` -> the named outputs of `serving_default`.
        task: the task's name (its `to_rows` shapes the answers).
        labels: the run's labels.
        explainer: the same for the `explain` signature (classifiers with attention), if any.
        inputs: the names of the texts the model reads, in order.
    """

    def __init__(self, function: Any, task: str, labels: list[str], explainer: Any = None,
                 inputs: tuple[str, ...] = (TEXT_INPUT,)):
        self.function, self.task, self.labels = function, TASKS.get(task), labels
        self.explainer = explainer
        self.inputs = tuple(inputs)

    def predict(self, rows: Iterable[str | Mapping[str, str]], batch_size: int = 64, explain: bool = False) -> Iterator[dict]:
        """One JSON-ready row per input row, in order; `rows` (plain strings for a one-input model,
        or objects with a text per input name) is consumed lazily, `batch_size` at a time.
        `explain` adds each token's attention weight (classifiers with attention pooling or a
        Transformer encoder)."""
        rows = iter(rows)
        while batch := list(itertools.islice(rows, batch_size)):
            yield from self.predict_batch(batch, explain)

    def predict_batch(self, batch: list[str | Mapping[str, str]], explain: bool = False) -> list[dict]:
        """The answers for one batch of rows (see `predict`)."""
        import numpy as np
        import tensorflow as tf

        if explain and self.explainer is None:
            raise KbuildError("--explain needs a classifier with attention over one text: model.pooling: attention, "
                              "or a transformer_encoder block")
        function = self.explainer if explain else self.function
        texts = [self._texts(row) for row in batch]
        outputs = function({name: tf.constant([row[name] for row in texts], tf.string) for name in self.inputs})
        numpy = {name: np.asarray(value) for name, value in outputs.items()}
        answers = self.task.to_rows([row[self.inputs[0]] for row in texts], numpy, self.labels)
        if len(self.inputs) == 1:
            return answers
        return [{**row, **answer} for row, answer in zip(texts, answers, strict=True)]

    def _texts(self, row: str | Mapping[str, str]) -> Mapping[str, str]:
        if isinstance(row, str):
            if len(self.inputs) > 1:
                raise KbuildError(f"this model reads {', '.join(self.inputs)}; give each row as an object with them")
            return {self.inputs[0]: row}
        missing = [name for name in self.inputs if name not in row]
        if missing:
            raise KbuildError(f"a row has no {', '.join(missing)}; this model reads {', '.join(self.inputs)}")
        return row


def load_predictor(path: str | os.PathLike) -> Predictor:
    """A predictor for a trained run folder (has spec.yaml), an export's model folder (its highest
    version) or one version folder, whatever its format (found through the format registry)."""
    from kbuild.exporter import register_formats
    from kbuild.exporter.formats import EXPORT_FORMATS, detect_format
    from kbuild.exporter.layout import NotAnExport, resolve_version
    from kbuild.exporter.savedmodel import read_metadata

    path = Path(path)
    if (path / "spec.yaml").is_file():
        return _from_run(path)
    try:
        version = resolve_version(path)
    except NotAnExport:
        raise KbuildError(f"{path}: neither a run folder (no spec.yaml) nor an export "
                          "(no numbered version folder with saved_model.pb)") from None
    register_formats()  # a fresh process has loaded no format's module yet
    fmt = detect_format(version)
    metadata = read_metadata(version)
    if fmt is None or EXPORT_FORMATS.get(fmt).load is None:
        raise KbuildError(f"{version}: no export format kbuild can read is in this folder")
    if not metadata:
        raise KbuildError(f"{version}: no metadata.json; was this exported by kbuild?")
    loaded = EXPORT_FORMATS.get(fmt).load(version, metadata)
    return Predictor(loaded.serve, metadata["task"], metadata["labels"], loaded.explain, loaded.inputs)


def _from_run(path: Path) -> Predictor:
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(path))
    names = servable.inputs

    def positional(function: Any) -> Any:  # the run's tf.functions take the texts in input order
        return None if function is None else (lambda texts: function(*[texts[name] for name in names]))

    return Predictor(positional(servable.function), servable.spec.task, servable.labels,
                     positional(servable.functions.get("explain")), names)


def predict(model_dir: str | os.PathLike, texts: Iterable[str], batch_size: int = 64) -> list[dict]:
    """Predictions for `texts` (API twin of `kbuild predict`)."""
    return list(load_predictor(model_dir).predict(texts, batch_size=batch_size))


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


def write_predictions(predictor: Predictor, rows: Iterable[tuple[int, Mapping[str, str]] | BadRow | str], out,
                      batch_size: int = 64, progress=None, explain: bool = False, on_error: str = "fail",
                      source: str = "<stdin>") -> PredictionCount:
    """Predict each row of `rows` ((line, texts) pairs or `BadRow`s from `kbuild.prediction.rows`;
    plain strings are taken as lines numbered from 1), writing one JSON object per line to `out`,
    batch by batch, flushed, in input order.

    A bad row first has every row before it answered and written; then it raises a `DataError`
    naming `source` and its line (`on_error="fail"`), or is counted and passed over (`"skip"`).
    `progress` (a kbuild.progress.Progress) is advanced per batch."""
    import json

    count = PredictionCount()
    pending: list[Mapping[str, str] | str] = []

    def flush() -> None:
        for row in predictor.predict_batch(pending, explain=explain) if pending else []:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()
        count.written += len(pending)
        if progress is not None:
            progress.update(len(pending))
        pending.clear()

    for number, item in enumerate(rows, 1):
        if isinstance(item, BadRow):
            if on_error != "skip":
                flush()
                raise DataError(item.message, source, item.line)
            count.skipped += 1
            count.first_skipped = count.first_skipped or item
            continue
        if isinstance(item, str):
            if not item.strip():
                continue
            item = (number, item.rstrip("\r\n"))
        pending.append(item[1])
        if len(pending) >= batch_size:
            flush()
    flush()
    if progress is not None:
        progress.close()
    return count


@dataclass
class PredictionCount:
    """What `write_predictions` did: rows answered, rows skipped and the first of them."""

    written: int = 0
    skipped: int = 0
    first_skipped: BadRow | None = None
