"""Optimizers and learning-rate schedules, looked up by the spec's names."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

if TYPE_CHECKING:
    from kbuild.spec.train import OptimizerSpec, ScheduleSpec


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


def _adam(spec, lr):
    return keras.optimizers.Adam(lr, beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **_clipping(spec))


def _adamw(spec, lr):
    decay = 0.004 if spec.weight_decay is None else spec.weight_decay
    return keras.optimizers.AdamW(lr, weight_decay=decay, beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **_clipping(spec))


def _sgd(spec, lr):
    return keras.optimizers.SGD(lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay, **_clipping(spec))


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def build_optimizer(optimizer: OptimizerSpec, schedule: ScheduleSpec, total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer named in the spec, with its schedule and gradient clipping."""
    lr = build_schedule(schedule, optimizer.learning_rate, total_steps)
    built = OPTIMIZERS[optimizer.name](optimizer, lr)
    if optimizer.name in ("adamw", "sgd"):
        # LayerNorm scales and biases are conventionally exempt from decay.
        built.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return built
