"""Distillation loss and the metric wrapper that reads its packed targets.

A distilling run's train batches carry targets `[batch, 1 + labels]` float32: column 0 the hard
label id (-1 for unlabelled transfer text), the rest the teacher's log-probabilities over the
labels (its logits up to a per-example constant, which softmax and the KL term ignore). Valid and
test batches keep plain label ids `[batch]`, so val_loss and the metrics stay comparable with a
run trained without a teacher. Both cases are told apart by the targets' static rank, which is
fixed per traced function (train step vs. test step).
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "kbuild"


def split_targets(y_true):
    """Packed targets -> (label ids int32 [batch] with -1 -> 0, has-label float [batch], teacher
    log-probabilities [batch, labels]); plain label ids -> (ids, ones, None)."""
    if len(y_true.shape) == 1 or (len(y_true.shape) == 2 and y_true.shape[-1] == 1):
        ids = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return ids, ops.ones_like(ids, dtype="float32"), None
    hard = y_true[:, 0]
    has_label = ops.cast(hard >= 0, "float32")
    return ops.cast(ops.maximum(hard, 0), "int32"), has_label, y_true[:, 1:]


@keras.saving.register_keras_serializable(package=PACKAGE)
class DistillationLoss(keras.losses.Loss):
    """alpha * cross-entropy on the hard labels (labelled rows only) + (1 - alpha) * the soft loss
    against the teacher: `kl` = KL(softmax(t / T) || softmax(s / T)) * T^2 (Hinton et al. 2015;
    the T^2 keeps its gradients on the hard loss's scale), `mse` = mean squared error between
    the log-probabilities (Tang et al. 2019). On plain label ids (validation) it is the hard loss
    alone. `y_pred` are the student's probabilities (the classification head ends in softmax)."""

    def __init__(self, alpha: float = 0.5, temperature: float = 2.0, kind: str = "kl", name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in ("kl", "mse"):
            raise ValueError(f"distill.loss must be kl or mse, not {kind!r}")
        self.alpha, self.temperature, self.kind = float(alpha), float(temperature), kind

    def call(self, y_true, y_pred):
        ids, has_label, teacher = split_targets(y_true)
        probabilities = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
        hard = keras.losses.sparse_categorical_crossentropy(ids, probabilities) * has_label
        if teacher is None:
            return hard
        student = ops.log(probabilities)
        if self.kind == "kl":
            t = self.temperature
            target = ops.softmax(teacher / t, axis=-1)
            log_student = ops.log_softmax(student / t, axis=-1)
            soft = ops.sum(target * (ops.log(ops.clip(target, 1e-12, 1.0)) - log_student), axis=-1) * t * t
        else:
            soft = ops.mean(ops.square(student - teacher), axis=-1)
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature, "kind": self.kind}


@keras.saving.register_keras_serializable(package=PACKAGE)
class HardLabels(keras.metrics.Metric):
    """A label metric (accuracy, macro-F1) fed the hard label ids of packed distillation targets,
    transfer rows (no label) weighted 0; plain label ids pass through. Keeps the inner metric's
    name, so logs read `accuracy` / `val_accuracy` as in any run."""

    def __init__(self, metric, name: str | None = None, **kwargs):
        if isinstance(metric, dict):
            metric = keras.saving.deserialize_keras_object(metric)
        super().__init__(name=name or metric.name, **kwargs)
        self.metric = metric

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids, has_label, _ = split_targets(y_true)
        weight = has_label if sample_weight is None else has_label * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self.metric.update_state(ids, y_pred, sample_weight=weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()

    def get_config(self):
        return {"name": self.name, "metric": keras.saving.serialize_keras_object(self.metric)}
