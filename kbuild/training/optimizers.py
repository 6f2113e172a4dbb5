"""Optimizers and learning-rate schedules, looked up by the spec's names."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

if TYPE_CHECKING:
    from kbuild.spec.train import OptimizerSpec, ScheduleSpec, TrainSpec


@keras.saving.register_keras_serializable(package="kbuild")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then constant, cosine or linear decay to `peak * min_ratio`."""

    def __init__(self, peak, total_steps, warmup_steps=0, decay="constant", min_ratio=0.0):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.decay, self.min_ratio = decay, min_ratio

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        if self.decay == "cosine":
            factor = 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "linear":
            factor = 1.0 - progress
        else:
            factor = ops.ones_like(progress)
        decayed = self.peak * (self.min_ratio + (1.0 - self.min_ratio) * factor)
        if self.warmup_steps:
            return ops.where(step < self.warmup_steps, self.peak * (step + 1.0) / warmup, decayed)
        return decayed

    def get_config(self):
        return {
            "peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "decay": self.decay, "min_ratio": self.min_ratio,
        }


def build_schedule(spec: ScheduleSpec, learning_rate: float, total_steps: int) -> Any:
    if spec.name == "constant" and not spec.warmup_steps:
        return learning_rate
    return WarmupSchedule(learning_rate, total_steps, spec.warmup_steps, spec.name, spec.min_ratio)


def _clipping(spec: OptimizerSpec) -> dict:
    return {k: v for k, v in (("clipnorm", spec.clipnorm), ("clipvalue", spec.clipvalue), ("global_clipnorm", spec.global_clipnorm)) if v is not None}


def _adam(spec, lr, **common):
    return keras.optimizers.Adam(lr, beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **common)


def _adamw(spec, lr, **common):
    decay = 0.004 if spec.weight_decay is None else spec.weight_decay
    return keras.optimizers.AdamW(lr, weight_decay=decay, beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **common)


def _sgd(spec, lr, **common):
    return keras.optimizers.SGD(lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay, **common)


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def build_optimizer(train: TrainSpec, total_steps: int, replicas: int = 1) -> keras.optimizers.Optimizer:
    """The optimizer `train.optimizer` names, with its schedule, clipping, gradient accumulation
    and (with `scale_learning_rate`) the linear scaling rule for `replicas` replicas."""
    optimizer = train.optimizer
    peak = optimizer.learning_rate * (replicas if train.scale_learning_rate else 1)
    # The schedule counts optimizer updates; with accumulation there is one per N batches.
    updates = max(1, total_steps // train.gradient_accumulation)
    lr = build_schedule(train.schedule, peak, updates)
    common = _clipping(optimizer)
    if train.gradient_accumulation > 1:
        common["gradient_accumulation_steps"] = train.gradient_accumulation
    built = OPTIMIZERS[optimizer.name](optimizer, lr, **common)
    if optimizer.name in ("adamw", "sgd"):
        # LayerNorm scales and biases are conventionally exempt from decay.
        built.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return built
