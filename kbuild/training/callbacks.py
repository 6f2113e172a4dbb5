"""Callbacks that make a run observable and safe: metrics log, step limit, NaN guard, throughput."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras


def optimizer_steps(model: keras.Model) -> int:
    """Training batches processed so far (the run's step count).

    With gradient accumulation, `optimizer.iterations` counts updates (batches // N); the batch
    count that resume and `max_steps` need is the private `_iterations` it is derived from.
    `int(variable)` fails on a MirroredVariable; numpy() works under every strategy.
    """
    counter = getattr(model.optimizer, "_iterations", model.optimizer.iterations)
    return int(counter.numpy())


class MetricsLog(keras.callbacks.Callback):
    """Appends one JSON line per epoch (all metrics, learning rate, epoch time) to metrics.jsonl."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 3)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


class StepLimit(keras.callbacks.Callback):
    """Stops training after `max_steps` optimizer steps in all."""

    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = max_steps

    def on_train_batch_end(self, batch, logs=None):
        if optimizer_steps(self.model) >= self.max_steps:
            self.model.stop_training = True


class NanGuard(keras.callbacks.Callback):
    """Stops at the first NaN/Inf loss and remembers where, so the run can fail with a message."""

    def __init__(self):
        super().__init__()
        self.failed_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failed_at = (self._epoch + 1, batch + 1)
            self.model.stop_training = True


class GuardedCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that never saves a model whose weights went NaN or Inf as the best one.

    Keras finishes the epoch after `stop_training`, and the first epoch always "improves", so
    without this a diverged run would leave NaN weights in model.keras.
    """

    def __init__(self, filepath: str, guard: NanGuard, ready: Callable[[], bool] = lambda: True, **kwargs):
        super().__init__(filepath, **kwargs)
        self.guard = guard
        self.ready = ready
        """False while the weights are not yet what may be saved (pruning below its final sparsity)."""

        self.saved_logs: dict | None = None
        """The epoch logs of the weights model.keras holds, when this process saved them."""
        self.saved_step: int | None = None
        """The optimizer step of those weights: while the model is still there, its weights are
        model.keras's."""

    def _save_model(self, epoch, batch, logs):
        if self.guard.failed_at is None and self.ready():
            super()._save_model(epoch, batch, logs)

    def _should_save_model(self, epoch, batch, logs, filepath):
        save = super()._should_save_model(epoch, batch, logs, filepath)
        if save:
            self.saved_logs = dict(logs or {})
            self.saved_step = optimizer_steps(self.model)
        return save


class Throughput(keras.callbacks.Callback):
    """Training samples per second, counting only time spent in training batches."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.samples = 0
        self.seconds = 0.0
        self._t = 0.0
        self._first_step = 0
        self._skip_first = True

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()
        self._first_step = batch

    def on_train_batch_end(self, batch, logs=None):
        if self._skip_first:  # the first step traces and compiles; it is not throughput
            self._skip_first = False
            return
        self.seconds += time.perf_counter() - self._t
        # One call runs steps_per_execution steps: Keras passes the first step's index at the begin
        # and the last one's at the end.
        self.samples += self.batch_size * (batch - self._first_step + 1)

    @property
    def samples_per_second(self) -> float | None:
        return round(self.samples / self.seconds, 1) if self.seconds else None


class StepProgress(keras.callbacks.Callback):
    """A plain progress line on stderr every `interval` seconds inside an epoch, for logs and CI.

    Keras without a terminal (`verbose=2`) prints once per epoch; one epoch of an LLM fine-tune or a
    QA run is 30 minutes or more, and a log that is silent for that long looks hung. On a terminal
    Keras's own progress bar does this job, so the caller adds this callback only without one."""

    def __init__(self, interval: float = 60.0, stream=None):
        super().__init__()
        self.interval = interval
        self.stream = stream
        self._epoch = 0
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        steps = (self.params or {}).get("steps")
        epochs = (self.params or {}).get("epochs")
        done = batch + 1
        per_step = (now - self._start) / done
        where = f"step {done:,}/{steps:,} ({done / steps:.0%})" if steps else f"step {done:,}"
        loss = f", loss {float(logs['loss']):.4f}" if logs and "loss" in logs else ""
        left = f", about {_duration((steps - done) * per_step)} left in the epoch" if steps else ""
        print(f"[kbuild] epoch {self._epoch + 1}/{epochs}, {where}{loss}, {per_step:.2f} s/step{left}",
              file=self.stream or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class ExecutionTimer(keras.callbacks.Callback):
    """Wall time of each train_function call (one call runs steps_per_execution steps and draws
    its batches inside, so input time is included, as in training). With `budget_s`, training
    stops once the calls after the first `warmup` have taken that long in all."""

    def __init__(self, budget_s: float | None = None, warmup: int = 0):
        super().__init__()
        self.durations: list[float] = []
        self.budget_s, self.warmup = budget_s, warmup
        self._start = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._start)
        if self.budget_s is not None and sum(self.durations[self.warmup:]) >= self.budget_s:
            self.model.stop_training = True
