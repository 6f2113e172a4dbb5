"""Checkpoints for `--resume`: the same step, optimizer state and random state as when it stopped.

Keras' BackupAndRestore resumes at the start of the interrupted epoch (it restores the epoch
number only), and its weights file is written in place, so a kill during the write leaves a
corrupt checkpoint. Here the optimizer's step counter is the truth: after a restore, training
continues at exactly that step (the seeded data stream is fast-forwarded to it, see `fit.py`),
and every file is written beside its final name and renamed into place.

    checkpoints/latest.weights.h5   model + optimizer variables (Keras save_weights)
    checkpoints/rng.npz             dropout seed-generator states (not in save_weights)
    checkpoints/state.json          {"step", "epoch"}: for people and tools
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from kbuild.runs import CHECKPOINT_RNG as RNG
from kbuild.runs import CHECKPOINT_STATE as STATE
from kbuild.runs import CHECKPOINT_WEIGHTS as WEIGHTS
from kbuild.runs import FRESH_START, reading
from kbuild.runtime import deferred_interrupts
from kbuild.training.callbacks import NanGuard, optimizer_steps


def _rng_variables(model: keras.Model) -> list:
    """Seed-generator states: in `model.variables` but not in `model.weights`, so save_weights
    skips them, and without them dropout masks after a resume differ from an unbroken run's."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def has_checkpoint(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file()


def save_checkpoint(model: keras.Model, folder: Path, epoch: int) -> None:
    """Write weights, optimizer and RNG state atomically (each file renamed into place); a
    Ctrl-C or SIGTERM that arrives meanwhile is raised once the checkpoint is complete."""
    with deferred_interrupts():
        _write_checkpoint(model, folder, epoch)


def _write_checkpoint(model: keras.Model, folder: Path, epoch: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f"staging.{os.getpid()}.weights.h5"
    model.save_weights(str(staging), overwrite=True)
    os.replace(staging, folder / WEIGHTS)
    rng = {f"v{i}": v.numpy() for i, v in enumerate(_rng_variables(model))}
    _atomic_write(folder / RNG, lambda f: np.savez(f, **rng))
    state = {"step": optimizer_steps(model), "epoch": epoch}
    _atomic_write(folder / STATE, lambda f: f.write(json.dumps(state).encode()))


def restore_checkpoint(model: keras.Model, folder: Path) -> int:
    """Load the checkpoint into a compiled model; return the optimizer step it reached."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    with reading(folder / WEIGHTS, FRESH_START):
        model.load_weights(str(folder / WEIGHTS))
    from kbuild.pretrained.backbone import restart_lora_adapters

    restart_lora_adapters(model)
    if (folder / RNG).is_file():
        with reading(folder / RNG, FRESH_START), np.load(folder / RNG) as saved:
            variables = _rng_variables(model)
            if len(saved.files) == len(variables):
                for i, variable in enumerate(variables):
                    variable.assign(saved[f"v{i}"])
    return optimizer_steps(model)


def _atomic_write(path: Path, write) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    with staging.open("wb") as f:
        write(f)
    os.replace(staging, path)


class StepCheckpoint(keras.callbacks.Callback):
    """Checkpoints every `every` steps (when set) and at each epoch end, never after NaN/Inf.

    Args:
        folder: the run's checkpoints/ folder.
        guard: the run's NanGuard; once it has fired, nothing more is written, so the last
            checkpoint stays the last good one.
        every: steps between checkpoints, or None for epoch ends only.
    """

    def __init__(self, folder: Path, guard: NanGuard, every: int | None = None):
        super().__init__()
        self.folder, self.guard, self.every = folder, guard, every
        self._epoch = 0
        self._saved: tuple[int, int] | None = None
        """(optimizer step, epoch) of the last checkpoint written."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # `>=`, not `%`: with steps_per_execution > 1 this runs once per several steps.
        if self.every and optimizer_steps(self.model) >= (self._saved[0] if self._saved else 0) + self.every:
            self.save_now()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        self.save_now()

    def save_now(self) -> None:
        """Write a checkpoint immediately (also used on SIGINT/SIGTERM); once per step and epoch:
        an interrupt held during a save is raised after it, and the clean-up then has nothing
        new to write."""
        state = (optimizer_steps(self.model), self._epoch)
        if self.guard.failed_at is None and state != self._saved:
            try:
                save_checkpoint(self.model, self.folder, self._epoch)
            except KeyboardInterrupt:  # held until the checkpoint was complete
                self._saved = state
                raise
            self._saved = state
