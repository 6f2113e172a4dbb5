"""Text regression: one number per text (a rating, a score). Linear head, MSE loss, MAE and Pearson r.

The label column holds numbers; a row whose label is not a number fails naming its line. The
"label list" saved with the run is the single output name, `value`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.blocks.pooling import POOLINGS
from kbuild.data.example import ReadResult
from kbuild.errors import DataError
from kbuild.tasks.base import TASKS, Task
from kbuild.tasks.head import pooled_head, pooling_issues

if TYPE_CHECKING:
    import numpy as np

    from kbuild.spec import Spec

VALUE = "value"


class RegressionTask(Task):
    name = "regression"
    logged_metrics = ("mae", "pearson")
    tflite = True

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.head.type != "softmax":
            yield ("model", "head", "type"), "regression ends in a linear output; leave model.head.type unset"
        yield from pooling_issues(spec)

    def prepare(self, split: ReadResult, spec: Spec, key: str) -> ReadResult:
        for example in split.examples:
            if example.label is None:
                continue
            try:
                value = float(example.label)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise DataError(f"{key}: regression needs a finite number as the label; received {example.label!r}",
                                split.source, example.line)
        return split

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        if train.examples and train.examples[0].label is None:
            raise DataError("data.train: the examples have no labels", train.source)
        return [VALUE]

    def encode_labels(self, split: ReadResult, labels: list[str], key: str, spec: Spec) -> np.ndarray:
        import numpy as np

        if split.examples and split.examples[0].label is None:
            raise DataError(f"{key}: the examples have no labels", split.source)
        return np.asarray([float(example.label) for example in split.examples], np.float32)

    def needs_start_token(self, spec: Spec) -> bool:
        return POOLINGS.get(spec.model.pooling).needs_start_token

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Pool, run the dense head, end in one float32 linear unit per text."""
        import keras

        x = pooled_head(features, spec)
        return keras.layers.Dense(1, dtype="float32", name=VALUE)(x)

    def loss(self, spec: Spec) -> Any:
        import keras

        return keras.losses.MeanSquaredError()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        import keras

        from kbuild.layers import PearsonCorrelation

        return [keras.metrics.MeanAbsoluteError(name="mae"), PearsonCorrelation()]

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        import tensorflow as tf

        return {VALUE: tf.cast(outputs[:, 0], tf.float32)}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"text": text, VALUE: round(float(value), 6)} for text, value in zip(texts, outputs[VALUE], strict=True)]


TASKS.register("regression")(RegressionTask())
