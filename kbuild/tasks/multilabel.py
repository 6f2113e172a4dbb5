"""Multi-label classification: any number of labels per text. Sigmoid per label, binary
cross-entropy, micro- and macro-F1 at per-label thresholds (`model.head.threshold`).

The label column holds an example's labels joined by `data.label_separator` (`sports,politics`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kbuild.data.example import ReadResult
from kbuild.errors import DataError
from kbuild.registry import did_you_mean
from kbuild.tasks.base import TASKS, logged_scores
from kbuild.tasks.pooled import PooledTask

if TYPE_CHECKING:
    import numpy as np

    from kbuild.spec import Spec

PROBABILITIES = "probabilities"


def thresholds(spec: Spec, labels: list[str]) -> list[float]:
    """One threshold per label, in label order."""
    setting = spec.model.head.threshold
    if isinstance(setting, dict):
        return [float(setting.get(label, 0.5)) for label in labels]
    return [float(setting)] * len(labels)


class MultiLabelTask(PooledTask):
    name = "multilabel"
    logged_metrics = ("micro_f1", "macro_f1")
    owned_fields = (*PooledTask.owned_fields, ("data", "label_separator"), ("model", "head", "threshold"))
    head_type_issue = "multilabel ends in one sigmoid per label; leave model.head.type unset"

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield from super().spec_issues(spec)
        setting = spec.model.head.threshold
        for label, value in (setting.items() if isinstance(setting, dict) else [(None, setting)]):
            if not 0.0 <= value <= 1.0:
                where = ("model", "head", "threshold") + ((label,) if label is not None else ())
                yield where, f"a threshold is a probability between 0 and 1; received {value}"

    def prepare(self, split: ReadResult, spec: Spec, key: str) -> ReadResult:
        separator = spec.data.label_separator
        examples = []
        for example in split.examples:
            if example.label is None:
                examples.append(example)
                continue
            labels = tuple(dict.fromkeys(part.strip() for part in example.label.split(separator) if part.strip()))
            if not labels:
                raise DataError(f"{key}: no label between the separators {separator!r}", split.source, example.line)
            examples.append(replace(example, label=labels))
        return ReadResult(examples, split.skipped, split.source)

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        if train.examples and train.examples[0].label is None:
            raise DataError("data.train: the examples have no labels", train.source)
        return sorted({label for example in train.examples for label in example.label})

    def encode_labels(self, split: ReadResult, labels: list[str], key: str, spec: Spec) -> np.ndarray:
        """Multi-hot float32 `[examples, labels]`; a label train never had fails naming its line."""
        import numpy as np

        index = {label: i for i, label in enumerate(labels)}
        hot = np.zeros((len(split.examples), len(labels)), np.float32)
        for row, example in enumerate(split.examples):
            if example.label is None:
                raise DataError(f"{key}: the examples have no labels", split.source)
            for label in example.label:
                if label not in index:
                    raise DataError(f"label {label!r} does not occur in the train split{did_you_mean(label, labels)}; "
                                    f"known labels: {', '.join(labels)}", split.source, example.line)
                hot[row, index[label]] = 1.0
        return hot

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        import keras

        x = self.pooled(features, spec)
        return keras.layers.Dense(len(labels), activation="sigmoid", dtype="float32", name=PROBABILITIES)(x)

    def loss(self, spec: Spec) -> Any:
        import keras

        return keras.losses.BinaryCrossentropy()

    def scores_from_validation(self, logs: Mapping[str, float], bundle: Any, split: str, spec: Spec) -> dict | None:
        return logged_scores(logs, ("loss", *self.logged_metrics))

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.layers import MultiLabelF1

        cuts = thresholds(spec, labels)
        return [MultiLabelF1(cuts, average="micro", name="micro_f1"), MultiLabelF1(cuts, average="macro", name="macro_f1")]

    def serve(self, texts: Any, tokenizer: Any, model: Any, labels: list[str], spec: Spec) -> dict[str, Any]:
        """`probabilities` and `predicted` (bool `[batch, labels]`, at the spec's thresholds)."""
        import tensorflow as tf

        probabilities = tf.cast(model(self.encode(tokenizer, texts, spec), training=False), tf.float32)
        return {PROBABILITIES: probabilities, "predicted": probabilities >= tf.constant(thresholds(spec, labels))}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [
            {
                "text": text,
                "labels": [label for label, chosen in zip(labels, outputs["predicted"][i], strict=True) if chosen],
                "probabilities": {label: round(float(p), 6) for label, p in zip(labels, outputs[PROBABILITIES][i], strict=True)},
            }
            for i, text in enumerate(texts)
        ]


TASKS.register("multilabel")(MultiLabelTask())
