"""Training extensions: what a capability adds to the one training loop, at fixed points.

`kbuild.training.fit` reads the data, builds the model, trains and evaluates in the same order for
every run. A capability that needs more than that (start the backbone from a trained run, start
the embeddings from word vectors, the task's own metric each epoch, pruning and distillation) is
one object with these hooks, which the loop calls for every extension in `EXTENSIONS` order:

    prepare(bundle) -> bundle      after the data is read (distill: the train split gains soft targets)
    loss(loss), metrics(metrics)   the task's, wrapped before the model is compiled
    adjust(model)                  the compiled model, before training and before a checkpoint is restored
    callbacks(total_steps)         Keras callbacks, after kbuild's guards and before its checkpoints
    checkpoint_ready()             whether the best-model checkpoint may save now
    results(metrics, best)         what results.json records (`best()` loads the saved best model)

`Extension` (`base.py`) has every hook as a no-op, so an extension writes only the ones it needs; an extension
whose spec section is absent stays in the list and does nothing (its results say so: `None`).
Adding one: a module here with an `Extension` subclass (its constructor takes the `RunStart`), and
its line in `EXTENSIONS`. `kbuild.compression.Compression` has the same hooks without subclassing (it sits
below training in the layers); `kbuild.training.execution` is not one: it decides how the model
itself is compiled.
"""

from __future__ import annotations

from collections.abc import Callable

from kbuild.compression import Compression
from kbuild.training.extensions.base import Extension, RunStart, TrainingExtension
from kbuild.training.extensions.init_from import InitFrom
from kbuild.training.extensions.task_callbacks import TaskCallbacks
from kbuild.training.extensions.word_vectors import WordVectors


def _compression(start: RunStart) -> TrainingExtension:
    return Compression(start.spec, start.folder, start.log)


EXTENSIONS: tuple[Callable[[RunStart], TrainingExtension], ...] = (WordVectors, InitFrom, TaskCallbacks, _compression)
"""Every hook runs in this order: the word vectors before init_from's copy (which may overwrite
them), the task's epoch metrics before pruning's masks (the checkpoints after them read both), and
results.json gets its keys in this order."""


def extensions_for(start: RunStart) -> list[TrainingExtension]:
    """The run's training extensions, in `EXTENSIONS` order."""
    return [make(start) for make in EXTENSIONS]


__all__ = ["EXTENSIONS", "Extension", "RunStart", "TrainingExtension", "extensions_for"]
