"""Optimizers and learning-rate schedules, looked up by the spec's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from kbuild.layers.schedules import WarmupSchedule

if TYPE_CHECKING:
    from kbuild.spec.train import OptimizerSpec, ScheduleSpec, TrainSpec


def build_schedule(spec: ScheduleSpec, learning_rate: float, total_steps: int) -> Any:
    if spec.name == "constant" and not spec.warmup_steps:
        return learning_rate
    return WarmupSchedule(learning_rate, total_steps, spec.warmup_steps, spec.name, spec.min_ratio)


def _clipping(spec: OptimizerSpec) -> dict:
    return {k: v for k, v in (("clipnorm", spec.clipnorm), ("clipvalue", spec.clipvalue), ("global_clipnorm", spec.global_clipnorm)) if v is not None}


def _adam(spec):
    return keras.optimizers.Adam, {"beta_1": spec.beta_1, "beta_2": spec.beta_2, "epsilon": spec.epsilon}


def _adamw(spec):
    decay = 0.004 if spec.weight_decay is None else spec.weight_decay
    return keras.optimizers.AdamW, {"weight_decay": decay, "beta_1": spec.beta_1, "beta_2": spec.beta_2, "epsilon": spec.epsilon}


def _sgd(spec):
    return keras.optimizers.SGD, {"momentum": spec.momentum, "nesterov": spec.nesterov, "weight_decay": spec.weight_decay}


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}
"""name -> (optimizer class, its settings from the spec)."""


def build_optimizer(train: TrainSpec, total_steps: int, replicas: int = 1,
                    head_paths: Sequence[str] = ()) -> keras.optimizers.Optimizer:
    """The optimizer `train.optimizer` names, with its schedule, clipping, gradient accumulation
    and (with `scale_learning_rate`) the linear scaling rule for `replicas` replicas. With
    `train.head_learning_rate`, the variables in `head_paths` step at that peak instead, on the
    same schedule."""
    optimizer = train.optimizer
    peak = optimizer.learning_rate * (replicas if train.scale_learning_rate else 1)
    # The schedule counts optimizer updates; with accumulation there is one per N batches.
    updates = max(1, total_steps // train.gradient_accumulation)
    lr = build_schedule(train.schedule, peak, updates)
    cls, settings = OPTIMIZERS[optimizer.name](optimizer)
    settings.update(_clipping(optimizer))
    if train.gradient_accumulation > 1:
        settings["gradient_accumulation_steps"] = train.gradient_accumulation
    if train.head_learning_rate is not None:
        from kbuild.layers.optimizers import HEAD_RATE

        cls = HEAD_RATE[cls]
        settings.update(head_paths=list(head_paths), head_factor=train.head_learning_rate / optimizer.learning_rate)
    built = cls(lr, **settings)
    if optimizer.name in ("adamw", "sgd"):
        # LayerNorm scales and biases are conventionally exempt from decay.
        built.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return built
