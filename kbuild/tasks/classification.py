"""Text classification (binary and multi-class): softmax head, cross-entropy, accuracy, macro-F1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.blocks.pooling import POOLINGS
from kbuild.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec

PROBABILITIES = "probabilities"


class ClassificationTask(Task):
    name = "classification"
    uses_labels = True

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        from kbuild.data.labels import label_vocabulary

        return label_vocabulary(train)

    def make_dataset(self, tokenizer: Any, split: ReadResult, labels: list[str], spec: Spec,
                     key: str, train: bool) -> tuple[Any, int]:
        """Batches of (ids [batch, max_length], label id [batch]); train is shuffled (and
        bucketed under `preprocess.bucketing`)."""
        from kbuild.data.labels import label_ids
        from kbuild.data.pipeline import encode_all, labelled_dataset

        ids_of_labels = label_ids(split, labels, key)
        ids = encode_all(tokenizer, [example.text for example in split.examples])
        dataset = labelled_dataset(
            ids,
            ids_of_labels,
            spec.train.batch_size,
            shuffle=train,
            seed=spec.seed,
            shuffle_buffer=spec.train.shuffle_buffer,
            bucketing=train and spec.preprocess.bucketing,
        )
        return dataset, len(split.examples)

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
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
