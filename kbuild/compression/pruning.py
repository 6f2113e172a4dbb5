"""Magnitude pruning for Keras 3 (`prune:`), without tensorflow-model-optimization.

tfmot supports only Keras 2, and importing it switches the process to legacy Keras, so kbuild
prunes with a callback instead of wrapped layers: after every optimizer update
(`on_train_batch_end`) each selected variable is multiplied by its 0/1 mask, so pruned weights are
exactly zero whenever anything reads the model (validation, checkpoints, the saved best model,
the export). Masks are recomputed from the weights' magnitudes whenever the polynomial schedule's
target rises (every `frequency` steps between `begin` and `end`). The assignment happens in the
cross-replica context, where a Keras variable's `assign` writes every replica's copy, so it holds
under tf.distribute strategies. With `train.steps_per_execution` = k the masks are applied once
per k updates (a callback sees only the last step of each execution); the weights are zero again
before every evaluation and save.

Already-pruned weights are zero, the smallest magnitudes, so a recomputed mask keeps them pruned;
on resume the masks are rebuilt from the restored weights at the schedule's current target.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from kbuild.errors import TrainingError
from kbuild.spec.compression import PruneSpec

DEFAULT_KERNELS: dict[type, tuple[str, ...]] = {
    keras.layers.Dense: ("kernel",),
    keras.layers.EinsumDense: ("kernel",),
    keras.layers.LSTMCell: ("kernel", "recurrent_kernel"),
    keras.layers.GRUCell: ("kernel", "recurrent_kernel"),
}
"""Layer type -> the weight attributes the default selection prunes (biases and norms never)."""


@dataclass(frozen=True)
class Schedule:
    """The polynomial schedule over optimizer steps, `prune:` resolved against the run's length."""

    initial: float
    final: float
    begin_step: int
    end_step: int
    frequency: int

    @classmethod
    def of(cls, spec: PruneSpec, total_steps: int) -> Schedule:
        begin = round(spec.begin * total_steps)
        end = max(begin, round(spec.end * total_steps))
        return cls(spec.initial_sparsity, spec.final_sparsity, begin, end, spec.frequency)

    def last_update(self, step: int) -> int | None:
        """The latest mask-update step at or before `step` (None before `begin`)."""
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def target(self, step: int) -> float:
        """The sparsity the masks hold after optimizer step `step` (0 before pruning begins)."""
        update = self.last_update(step)
        if update is None:
            return 0.0
        if self.end_step == self.begin_step or update >= self.end_step:
            return self.final
        progress = (update - self.begin_step) / (self.end_step - self.begin_step)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3


def prunable_variables(model: Any, spec: PruneSpec) -> list[Any]:
    """The variables `prune:` selects, in model order; an empty selection is a spec error."""
    if spec.variables is not None:
        pattern = re.compile(spec.variables)
        chosen = [v for v in model.trainable_variables if pattern.search(v.path)]
        where = f"prune.variables {spec.variables!r} matches no trainable variable"
    else:
        chosen = []
        for layer in model._flatten_layers(include_self=False):
            names = next((n for kind, n in DEFAULT_KERNELS.items() if isinstance(layer, kind)), ())
            if spec.embeddings and isinstance(layer, keras.layers.Embedding):
                names = ("embeddings",)
            chosen += [getattr(layer, name) for name in names if getattr(layer, name, None) is not None]
        where = "prune: the model has no Dense, EinsumDense, LSTM or GRU kernel to prune (set prune.variables)"
    unique = list({id(v): v for v in chosen}.values())
    if not unique:
        raise TrainingError(where)
    return unique


def magnitude_masks(values: list[np.ndarray], sparsity: float, scope: str) -> list[np.ndarray]:
    """0/1 masks zeroing exactly floor(sparsity * n) of the smallest |w|: per tensor (`layer`)
    or over all tensors at once (`global`). Ties are broken by position, so the count is exact."""
    if scope == "layer":
        return [_mask(np.abs(v).ravel(), sparsity).reshape(v.shape) for v in values]
    flat = _mask(np.concatenate([np.abs(v).ravel() for v in values]), sparsity)
    bounds = np.cumsum([0, *(v.size for v in values)])
    return [flat[a:b].reshape(v.shape) for v, a, b in zip(values, bounds[:-1], bounds[1:], strict=True)]


def _mask(magnitudes: np.ndarray, sparsity: float) -> np.ndarray:
    mask = np.ones(magnitudes.size, np.float32)
    k = math.floor(sparsity * magnitudes.size)
    if k:
        mask[np.argpartition(magnitudes, k - 1)[:k]] = 0.0
    return mask


class Pruning(keras.callbacks.Callback):
    """Applies the masks after every training batch and updates them on the schedule.

    `at_final` tells the best-model checkpoint whether the weights have reached the final
    sparsity: a model saved before that would export denser than the spec asked."""

    def __init__(self, spec: PruneSpec, total_steps: int):
        super().__init__()
        self.spec = spec
        self.schedule = Schedule.of(spec, total_steps)
        self.variables: list[Any] = []
        self.masks: list[Any] = []
        self.sparsity = 0.0

    @property
    def at_final(self) -> bool:
        return self.sparsity >= self.schedule.final

    def on_train_begin(self, logs=None):
        if not self.variables:
            self.variables = prunable_variables(self.model, self.spec)
        self._update(int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        self._update(int(self.model.optimizer.iterations.numpy()))

    def _update(self, step: int) -> None:
        target = self.schedule.target(step)
        if not target and not self.masks:  # before `begin`: nothing pruned yet
            return
        if target != self.sparsity or not self.masks:
            values = [np.asarray(keras.ops.convert_to_numpy(v)) for v in self.variables]
            masks = magnitude_masks(values, target, self.spec.scope)
            self.masks = [keras.ops.convert_to_tensor(m, dtype=v.dtype) for m, v in zip(masks, self.variables, strict=True)]
            self.sparsity = target
        for variable, mask in zip(self.variables, self.masks, strict=True):
            variable.assign(variable * mask)


def sparsity_report(model: Any, spec: PruneSpec) -> dict:
    """results.json's `pruning`: the target, and the fraction of exact zeros overall and per
    pruned variable (by path) in `model` (the saved best model)."""
    variables = prunable_variables(model, spec)
    layers, zeros, total = {}, 0, 0
    for variable in variables:
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        n_zero = int(np.count_nonzero(value == 0))
        layers[variable.path] = round(n_zero / value.size, 6)
        zeros, total = zeros + n_zero, total + value.size
    return {
        "final_sparsity": spec.final_sparsity,
        "scope": spec.scope,
        "sparsity": round(zeros / max(total, 1), 6),
        "pruned_parameters": total,
        "zero_parameters": zeros,
        "layers": layers,
    }


def nonzero_parameters(model: Any) -> int:
    """Weights that are not exactly zero, over every variable of `model`."""
    return int(sum(np.count_nonzero(np.asarray(keras.ops.convert_to_numpy(v))) for v in model.weights))
