"""Learning-rate schedules saved with the optimizer (so a resumed run continues the same curve)."""

from __future__ import annotations

import math

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
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
