"""Optimizers whose head steps at its own learning rate (`train.head_learning_rate`).

Keras 3 has one learning rate per optimizer. Scaling the head's gradients would not do it: Adam
normalises them away. So the head's variables get the current (scheduled) rate times a fixed
factor inside `update_step`, one multiplication per variable per step. The classes are registered
serialisable, so model.keras (which saves the optimizer) reloads them.
"""

from __future__ import annotations

import keras

from kbuild.layers.base import PACKAGE


class _HeadRate:
    """Mixin over a Keras optimizer: variables whose path is in `head_paths` step at
    `head_factor` x the learning rate, so they follow the same schedule to their own peak."""

    def __init__(self, *args, head_paths=(), head_factor=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_paths = [str(path) for path in head_paths]
        self.head_factor = float(head_factor)
        self._rate_factors: list[float] = []

    def build(self, var_list):
        super().build(var_list)
        head = set(self.head_paths)
        self._rate_factors = [self.head_factor if variable.path in head else 1.0 for variable in var_list]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._rate_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "head_paths": list(self.head_paths), "head_factor": self.head_factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadRateAdam(_HeadRate, keras.optimizers.Adam):
    pass


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadRateAdamW(_HeadRate, keras.optimizers.AdamW):
    pass


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadRateSGD(_HeadRate, keras.optimizers.SGD):
    pass


HEAD_RATE = {keras.optimizers.Adam: HeadRateAdam, keras.optimizers.AdamW: HeadRateAdamW, keras.optimizers.SGD: HeadRateSGD}
"""The head-rate class of each optimizer class kbuild builds."""
