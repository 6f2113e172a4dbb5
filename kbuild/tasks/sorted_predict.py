"""A model's outputs for every encoded row of a split, read shortest rows first in batches cut to
their bucket length (`kbuild.data.pipeline.length_sorted_batches`), returned in row order.

`model.predict` over a split's features reads every row padded to `max_length`: STS-B's sentence
pairs average about 30 pieces of a 128 window. For a model trained on bucketed batches
(`preprocess.bucketing`), which reads any padded length alike, the rows are cut; otherwise they
are read whole, in batches of similar rows all the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def features_signature(features: Any) -> Any:
    """`tf.TensorSpec`s for batches of these encoded features: any batch, any length."""
    import tensorflow as tf

    def signature(array: Any) -> Any:
        array = np.asarray(array)
        return tf.TensorSpec([None, None, *array.shape[2:]], tf.as_dtype(array.dtype))

    return tf.nest.map_structure(signature, features)


def predict_rows(model: Any, features: Any, batch_size: int, trim: bool) -> np.ndarray:
    """The model's output for each row (one tensor per row, as a pooled task's), in row order."""
    import tensorflow as tf

    from kbuild.data.pipeline import length_sorted_batches

    forward = tf.function(lambda batch: model(batch, training=False), input_signature=[features_signature(features)])
    outputs: np.ndarray | None = None
    for rows, batch in length_sorted_batches(features, batch_size, trim):
        values = forward(batch).numpy()
        if outputs is None:
            outputs = np.empty((len(np.asarray(tf.nest.flatten(features)[0])), *values.shape[1:]), values.dtype)
        outputs[rows] = values
    if outputs is None:  # no rows
        return np.empty((0,), np.float32)
    return outputs
