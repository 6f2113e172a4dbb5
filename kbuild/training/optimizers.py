"""Optimizers and learning-rate schedules, looked up by the spec's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from kbuild.layers.optimizers import SCALED
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


def _adam(spec: OptimizerSpec) -> dict:
    return {"beta_1": spec.beta_1, "beta_2": spec.beta_2, "epsilon": spec.epsilon}


def _adamw(spec: OptimizerSpec) -> dict:
    decay = 0.004 if spec.weight_decay is None else spec.weight_decay
    return {"weight_decay": decay, **_adam(spec)}


def _sgd(spec: OptimizerSpec) -> dict:
    return {"momentum": spec.momentum, "nesterov": spec.nesterov, "weight_decay": spec.weight_decay}


OPTIMIZERS = {"adam": (keras.optimizers.Adam, _adam), "adamw": (keras.optimizers.AdamW, _adamw),
              "sgd": (keras.optimizers.SGD, _sgd)}
"""Each `train.optimizer.name`: its Keras class and the options the spec sets."""


def build_optimizer(train: TrainSpec, total_steps: int, replicas: int = 1, scaled_variables: Sequence = (),
                    rate_scale: float = 1.0) -> keras.optimizers.Optimizer:
    """The optimizer `train.optimizer` names, with its schedule, clipping, gradient accumulation
    and (with `scale_learning_rate`) the linear scaling rule for `replicas` replicas.

    `scaled_variables` (a checkpoint's, `backbone_variables`) update at `rate_scale` x the rate;
    with none, or a scale of 1, it is Keras's own optimizer class."""
    optimizer = train.optimizer
    peak = optimizer.learning_rate * (replicas if train.scale_learning_rate else 1)
    lr = build_schedule(train.schedule, peak, optimizer_updates(train, total_steps))
    common = _clipping(optimizer)
    if train.gradient_accumulation > 1:
        common["gradient_accumulation_steps"] = train.gradient_accumulation
    cls, options = OPTIMIZERS[optimizer.name]
    if scaled_variables and rate_scale != 1:
        cls, common = SCALED[cls], {**common, "scaled_variables": scaled_variables, "rate_scale": rate_scale}
    built = cls(lr, **options(optimizer), **common)
    if optimizer.name in ("adamw", "sgd"):
        # LayerNorm scales and biases are conventionally exempt from decay.
        built.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return built
