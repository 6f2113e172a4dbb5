"""Text regression: one number per text (a rating, a score). Linear head, MSE loss, MAE and Pearson r.

The label column holds numbers; a row whose label is not a number fails naming its line. The
"label list" saved with the run is the single output name, `value`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kbuild.data.example import ReadResult
from kbuild.errors import DataError
from kbuild.tasks.base import TASKS
from kbuild.tasks.pooled import PooledTask

if TYPE_CHECKING:
    import numpy as np

    from kbuild.spec import Spec

VALUE = "value"


class RegressionTask(PooledTask):
    name = "regression"
    logged_metrics = ("mae", "pearson")
    head_type_issue = "regression ends in a linear output; leave model.head.type unset"

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

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Pool, run the dense head, end in one float32 linear unit per text."""
        import keras

        x = self.pooled(features, spec)
        return keras.layers.Dense(1, dtype="float32", name=VALUE)(x)

    def loss(self, spec: Spec) -> Any:
        import keras

        return keras.losses.MeanSquaredError()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        import keras

        from kbuild.layers import PearsonCorrelation

        return [keras.metrics.MeanAbsoluteError(name="mae"), PearsonCorrelation()]

    def evaluate(self, model: Any, bundle: Any, split: str, spec: Spec) -> dict:
        """The compiled metrics, and `spearman`: the rank correlation STS-B is reported with. Ranks
        need every prediction of the split at once, so it takes one prediction pass (rows
        shortest first, `predict_rows`)."""
        import numpy as np

        from kbuild.tasks.sorted_predict import predict_rows

        metrics = super().evaluate(model, bundle, split, spec)
        predicted = predict_rows(model, bundle.splits[split].features, self.scoring_batch_size(spec),
                                 trim=spec.preprocess.bucketing)[:, 0]
        gold = np.asarray([float(example.label) for example in bundle.examples[split]])
        metrics["spearman"] = spearman(predicted, gold)
        return metrics

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        import tensorflow as tf

        return {VALUE: tf.cast(outputs[:, 0], tf.float32)}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"text": text, VALUE: round(float(value), 6)} for text, value in zip(texts, outputs[VALUE], strict=True)]


TASKS.register("regression")(RegressionTask())


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks, tied values sharing their mean rank
    (as scipy.stats.spearmanr computes it); 0 when either side is constant."""
    import numpy as np

    def ranks(values):
        values = np.asarray(values, np.float64)
        order = np.argsort(values, kind="mergesort")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=ranked)
        return sums[inverse] / counts[inverse]

    a, b = ranks(x), ranks(y)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
