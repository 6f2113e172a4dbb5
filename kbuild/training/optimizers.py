"""Optimizers and learning-rate schedules, looked up by the spec's names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kbuild.layers.schedules import WarmupSchedule

if TYPE_CHECKING:
    from kbuild.spec.train import OptimizerSpec, ScheduleSpec, TrainSpec


def build_schedule(spec: ScheduleSpec, learning_rate: float, total_steps: int) -> Any:
    """The learning rate over `total_steps` optimizer updates, with `warmup_ratio` resolved to steps."""
    warmup = spec.warmup_for(total_steps)
    if spec.name == "constant" and not warmup:
        return learning_rate
    return WarmupSchedule(learning_rate, total_steps, warmup, spec.name, spec.min_ratio)


def optimizer_updates(train: TrainSpec, total_steps: int) -> int:
    """Optimizer updates in `total_steps` batches: with gradient accumulation, one per N batches
    (what the schedule counts)."""
    return max(1, total_steps // train.gradient_accumulation)


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
    lr = build_schedule(train.schedule, peak, optimizer_updates(train, total_steps))
    common = _clipping(optimizer)
    if train.gradient_accumulation > 1:
        common["gradient_accumulation_steps"] = train.gradient_accumulation
    built = OPTIMIZERS[optimizer.name](optimizer, lr, **common)
    if optimizer.name in ("adamw", "sgd"):
        # LayerNorm scales and biases are conventionally exempt from decay.
        built.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return built
