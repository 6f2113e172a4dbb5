"""The callbacks of a run's `model.fit`, in the order they must run, and the ones the loop reads
after training (the NaN guard, the step checkpoint, throughput, early stopping, the selection)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from kbuild.runs import RunFolder
from kbuild.spec import Spec
from kbuild.spec.train import monitor_mode
from kbuild.training.callbacks import (
    GuardedCheckpoint,
    MetricsLog,
    NanGuard,
    StepLimit,
    StepProgress,
    Throughput,
)
from kbuild.training.checkpoint import StepCheckpoint
from kbuild.training.extensions import TrainingExtension
from kbuild.training.stopping import PatienceStopping, SelectionState, early_stopping_for


@dataclass
class TrainingCallbacks:
    """Every callback of `model.fit`, in order, and the ones the loop reads afterwards."""

    all: list[keras.callbacks.Callback]
    guard: NanGuard
    backup: StepCheckpoint
    throughput: Throughput
    stopping: PatienceStopping | None
    selection: SelectionState


def training_callbacks(spec: Spec, folder: RunFolder, bundle, extensions: Sequence[TrainingExtension],
                       total_steps: int, extra: Sequence[keras.callbacks.Callback]) -> TrainingCallbacks:
    """kbuild's callbacks around the extensions': the guards first, then the extensions' (a task's
    epoch metrics, pruning's masks), then what reads their results (checkpoints, logs, early stopping),
    the caller's, and the selection state last (it saves what the checkpoint and early stopping
    decided this epoch)."""
    monitor = spec.train.monitor if "valid" in bundle.datasets else spec.train.monitor.removeprefix("val_")
    guard = NanGuard()
    backup = StepCheckpoint(folder.checkpoints, guard, spec.train.checkpoint_every)
    throughput = Throughput(spec.train.batch_size)
    checkpoint = GuardedCheckpoint(str(folder.model), guard, monitor=monitor, mode=monitor_mode(monitor),
                                   save_best_only=True,
                                   ready=lambda: all(extension.checkpoint_ready() for extension in extensions))
    callbacks = [
        guard,
        throughput,
        backup,
        *(callback for extension in extensions for callback in extension.callbacks(total_steps)),
        checkpoint,
        MetricsLog(folder.metrics),
        keras.callbacks.TensorBoard(str(folder.logs), write_graph=False, profile_batch=0),
        StepLimit(total_steps),
    ]
    if not sys.stderr.isatty():  # a terminal has Keras's progress bar (fit's verbose=1)
        callbacks.append(StepProgress())
    stopping = None
    if es := early_stopping_for(spec.train):
        es_monitor = es.monitor if "valid" in bundle.datasets else es.monitor.removeprefix("val_")
        stopping = PatienceStopping(
            monitor=es_monitor, patience=es.patience, min_delta=es.min_delta,
            mode=monitor_mode(es_monitor) if es.mode == "auto" else es.mode,
            restore_best_weights=es.restore_best_weights,
        )
        callbacks.append(stopping)
    callbacks.extend(extra)
    selection = SelectionState(folder.checkpoints, guard, checkpoint, stopping)
    callbacks.append(selection)
    return TrainingCallbacks(callbacks, guard, backup, throughput, stopping, selection)
