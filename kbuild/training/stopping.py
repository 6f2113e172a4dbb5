"""How long a run trains, why it stopped, and early stopping that survives `--resume`.

`train.epochs: auto` makes the epoch count follow the data: about `train.epoch_budget.samples`
examples in all (`ceil(samples / train rows)` epochs, between `min_epochs` and `max_epochs`),
stopped early when the selection metric stops improving. With SST-2's 67,349 rows and the default
200,000 samples that is the 3 epochs the SST-2 specs always had; a 5,000-row set gets up to 40 short
epochs instead of 3, and a million rows one epoch rather than three. Measured in
benchmarks/RESULTS.md (issue 19). A pretrained backbone's budget is smaller and has a floor
(`FINE_TUNING_BUDGET`, kbuild/spec/train.py: SST-2 2 epochs, 5,000 rows up to 20).

The step budget also resolves `schedule.warmup_ratio` to steps, so the log line that states the
budget states the warmup too.

Early stopping and the best-model checkpoint keep state across epochs (epochs without improvement,
best value): `SelectionState` writes it to checkpoints/selection.json at every epoch end and a
resumed run reads it back, so stopping and model selection after `--resume` are those of an
unbroken run.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras

from kbuild.runs import FRESH_START, SELECTION_STATE, reading
from kbuild.spec.train import EarlyStoppingSpec, TrainSpec
from kbuild.training.callbacks import NanGuard
from kbuild.training.optimizers import optimizer_updates

STATE = SELECTION_STATE
AUTO_PATIENCE = 2
"""Epochs without improvement before `epochs: auto` stops, when the spec sets no early_stopping."""


@dataclass(frozen=True)
class EpochPlan:
    epochs: int
    reason: str
    """How `epochs` was chosen, for the log and results.json."""


def plan_epochs(train: TrainSpec, rows: int) -> EpochPlan:
    """The most epochs the run may train: `train.epochs`, or under `auto` the data-sized budget."""
    if train.epochs != "auto":
        return EpochPlan(train.epochs, f"train.epochs {train.epochs}")
    budget = train.epoch_budget
    wanted = math.ceil(budget.samples / max(rows, 1))
    epochs = min(max(wanted, budget.min_epochs), budget.max_epochs)
    bound = (f", capped at max_epochs {budget.max_epochs}" if wanted > budget.max_epochs else
             f", raised to min_epochs {budget.min_epochs}" if wanted < budget.min_epochs else "")
    return EpochPlan(epochs, f"epochs: auto = {budget.samples:,} samples / {rows:,} train rows{bound}")


class StepBudget(NamedTuple):
    """How long the run trains: its epochs, of `steps_per_epoch` steps, up to `total_steps`, the
    first `warmup_steps` optimizer updates of which warm the learning rate up."""

    steps_per_epoch: int
    total_steps: int
    epochs: int
    plan: EpochPlan
    warmup_steps: int = 0
    warmup_reason: str = ""

    def describe(self) -> str:
        reason = f" ({self.warmup_reason})" if self.warmup_reason else ""
        warmup = f"; warmup {self.warmup_steps} step(s){reason}" if self.warmup_steps else ""
        return f"{self.epochs} epoch(s) x {self.steps_per_epoch} steps ({self.plan.reason}){warmup}"


def step_budget(train: TrainSpec, train_rows: int) -> StepBudget:
    """The epochs `plan_epochs` allows, each a pass over the train rows, capped at `train.max_steps`."""
    steps_per_epoch = max(1, math.ceil(train_rows / train.batch_size))
    plan = plan_epochs(train, train_rows)
    total_steps = plan.epochs * steps_per_epoch
    if train.max_steps:
        total_steps = min(total_steps, train.max_steps)
    updates = optimizer_updates(train, total_steps)
    warmup = train.schedule.warmup_for(updates)
    ratio = train.schedule.warmup_ratio
    reason = "" if ratio is None else f"warmup_ratio {ratio} of {updates:,} optimizer steps"
    return StepBudget(steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch), plan, warmup, reason)


def early_stopping_for(train: TrainSpec) -> EarlyStoppingSpec | None:
    """`train.early_stopping`; under `epochs: auto` without one, patience AUTO_PATIENCE on
    `train.monitor` (an epoch budget sized for the data is an upper bound, not a target)."""
    if train.early_stopping is not None or train.epochs != "auto":
        return train.early_stopping
    return EarlyStoppingSpec(monitor=train.monitor, patience=AUTO_PATIENCE)


class PatienceStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, but its count is not reset by the second `fit` call of a resumed
    run (fit.py finishes an interrupted epoch in a call of its own), and best weights are put back
    only when it really stops training, not at the end of that first call, which would rewind the
    model before the rest of the run. (Evaluation and export read model.keras either way.)"""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._begun = False

    def on_train_begin(self, logs=None):
        if not self._begun:
            super().on_train_begin(logs)
            self._begun = True

    def on_epoch_end(self, epoch, logs=None):
        best, best_epoch = self.best, self.best_epoch
        super().on_epoch_end(epoch, logs)
        # Keras sets best_epoch to the current epoch whenever it holds no best weights yet, which
        # after a resume is true however good the restored best was: keep it unless it improved.
        if best is not None and self.best is best:
            self.best_epoch = best_epoch

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            super().on_train_end(logs)

    def state(self) -> dict:
        return {"wait": self.wait, "best": _number(self.best), "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    def load_state(self, state: dict) -> None:
        self.on_train_begin()  # fixes the fresh state first; what follows overrides it
        self.wait, self.best = state["wait"], state["best"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]


class SelectionState(keras.callbacks.Callback):
    """Writes the best-model checkpoint's best value and the early-stopping state after every
    epoch (last in the callback list, after both have updated), atomically.

    A kill between the epoch's weights checkpoint and this write loses that one epoch's update:
    the resumed run then counts that epoch as neither better nor worse. Nothing is written once
    `guard` has seen a NaN/Inf loss, as for the weights checkpoint.
    """

    def __init__(self, folder: Path, guard: NanGuard, checkpoint: keras.callbacks.ModelCheckpoint,
                 stopping: PatienceStopping | None):
        super().__init__()
        self.path = folder / STATE
        self.guard, self.checkpoint, self.stopping = guard, checkpoint, stopping

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failed_at is not None:
            return
        state = {"epoch": epoch + 1, "checkpoint_best": _number(self.checkpoint.best),
                 "early_stopping": self.stopping.state() if self.stopping else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{STATE}.{os.getpid()}")
        staging.write_text(json.dumps(state), encoding="utf-8")
        os.replace(staging, self.path)

    def restore(self) -> bool:
        """Load the saved state (a resumed run); True when early stopping had already ended it."""
        if not self.path.is_file():
            return False
        with reading(self.path, FRESH_START):
            state = json.loads(self.path.read_text(encoding="utf-8"))
            self.checkpoint.best = state["checkpoint_best"]
            restored = self.stopping is not None and state["early_stopping"] is not None
            if restored:
                self.stopping.load_state(state["early_stopping"])
        return restored and self.stopping.stopped_epoch > 0


def stop_reason(stopping: PatienceStopping | None, plan: EpochPlan, steps: int, max_steps: int | None) -> str:
    """Why training ended, in words: patience exhausted, step budget or epoch budget reached."""
    if stopping is not None and stopping.stopped_epoch > 0:
        best = "none" if stopping.best is None else f"{stopping.best:.4f}"
        return (f"patience exhausted at epoch {stopping.stopped_epoch + 1}: {stopping.monitor} has not improved "
                f"on {best} (epoch {stopping.best_epoch + 1}) for {stopping.patience} epoch(s)")
    if max_steps is not None and steps >= max_steps:
        return f"step budget reached: train.max_steps {max_steps}"
    return f"epoch budget reached: {plan.epochs} epoch(s) ({plan.reason})"


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
