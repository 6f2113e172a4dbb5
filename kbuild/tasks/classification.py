"""Text classification (binary and multi-class): softmax head, cross-entropy, accuracy, macro-F1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.blocks.pooling import POOLINGS
from kbuild.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from kbuild.spec import Spec

PROBABILITIES = "probabilities"


class ClassificationTask(Task):
    name = "classification"

    def build_outputs(self, features: Any, spec: Spec, labels: list[str]) -> Any:
        """Pool the sequence, run the dense head, end in float32 softmax over the labels."""
        import keras

        x = POOLINGS.get(spec.model.pooling).build(features)
        head = spec.model.head
        for i, units in enumerate(head.hidden):
            if head.dropout:
                x = keras.layers.Dropout(head.dropout, seed=spec.seed + i, name=f"head_dropout{i}")(x)
            x = keras.layers.Dense(units, activation=head.activation, name=f"head_dense{i}")(x)
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, seed=spec.seed + 99, name="head_dropout_out")(x)
        # float32 output keeps the softmax and the loss stable under mixed precision.
        return keras.layers.Dense(len(labels), activation="softmax", dtype="float32", name=PROBABILITIES)(x)

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.head.type != "softmax":
            yield ("model", "head", "type"), f"{spec.model.head.type!r} heads are for tagging; classification uses softmax"
        if spec.model.embedding.chars is not None:
            yield ("model", "embedding", "chars"), "char features are for tagging (task: tagging) for now"

    def loss(self, spec: Spec) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        import keras

        from kbuild.layers import SparseMacroF1

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseMacroF1(len(labels))]

    def needs_start_token(self, spec: Spec) -> bool:
        return POOLINGS.get(spec.model.pooling).needs_start_token

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        """Graph-side post-processing for the SavedModel: probabilities and the winning label."""
        import tensorflow as tf

        probabilities = tf.cast(outputs, tf.float32)
        label = tf.gather(tf.constant(labels), tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """JSON-ready predictions, one per input text."""
        rows = []
        for i, text in enumerate(texts):
            probs = outputs["probabilities"][i]
            label = outputs["label"][i]
            rows.append({
                "text": text,
                "label": label.decode() if isinstance(label, bytes) else str(label),
                "probabilities": {name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)},
            })
        return rows


TASKS.register("classification")(ClassificationTask())
