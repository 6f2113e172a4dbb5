"""Optimizers that update some variables at a scaled learning rate (`model.backbone.learning_rate_scale`).

Keras 3 has one learning rate per optimizer and no parameter groups, and scaling the gradient does
not scale an Adam step (Adam divides it by its own running size). So the scale goes where the rate
is used: `update_step`, and the decoupled weight decay, which Keras applies at the optimizer's
rate before the step. Which variables are scaled is saved by path, so a `model.keras` reloads.
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE


class ScaledRates:
    """Mixin over a Keras optimizer: `scaled_variables` update at learning_rate x `rate_scale`,
    decay included; every other variable as the optimizer would.

    The variables are matched by identity, as Keras keys its own slots (so a replica's copy of a
    mirrored variable matches too): paths are not unique in a model that holds a checkpoint built
    outside it (its `token_embedding/embeddings` beside kbuild's own). The config keeps the paths,
    which a reloaded optimizer matches instead; kbuild never trains a reloaded one further."""

    def __init__(self, *args, scaled_variables=(), scaled_paths=(), rate_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate_scale = float(rate_scale)
        self.scaled_paths = tuple(v.path for v in scaled_variables) or tuple(scaled_paths)
        self._scaled_keys = frozenset(self._var_key(v) for v in scaled_variables)

    def build(self, variables):
        super().build(variables)
        if not self._scaled_keys:
            paths = set(self.scaled_paths)
            self._scaled_keys = frozenset(self._var_key(v) for v in variables if v.path in paths)

    def _scaled(self, variable) -> bool:
        return self._var_key(variable) in self._scaled_keys

    def _use_weight_decay(self, variable):
        # Scaled variables decay in update_step instead, at their own rate.
        return not self._scaled(variable) and super()._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if self._scaled(variable):
            learning_rate = ops.cast(learning_rate, variable.dtype) * ops.cast(self.rate_scale, variable.dtype)
            if self.weight_decay is not None and super()._use_weight_decay(variable):
                decay = ops.cast(self.weight_decay, variable.dtype) * learning_rate
                self.assign_sub(variable, variable * decay)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "scaled_paths": list(self.scaled_paths), "rate_scale": self.rate_scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledAdam(ScaledRates, keras.optimizers.Adam):
    """Adam with `ScaledRates`."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledAdamW(ScaledRates, keras.optimizers.AdamW):
    """AdamW with `ScaledRates`."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledSGD(ScaledRates, keras.optimizers.SGD):
    """SGD with `ScaledRates`."""


SCALED = {keras.optimizers.Adam: ScaledAdam, keras.optimizers.AdamW: ScaledAdamW, keras.optimizers.SGD: ScaledSGD}
"""The scaled class of each optimizer class `kbuild.training.optimizers` builds."""
