"""A spec's whole model without a run: the public `kbuild.build_model`, and `kbuild summary`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.tasks.base import TASKS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec


def build_model(spec: Spec, vocab_size: int, labels: list[str]) -> keras.Model:
    """The model of a row-per-example task for `spec` (classification, tagging, regression,
    multilabel, language model): the backbone with the task's outputs.

    Args:
        spec: the validated spec.
        vocab_size: size of the tokenizer's vocabulary (ids 0..vocab_size-1).
        labels: the label vocabulary (task-dependent; class names for classification).
    """
    return TASKS.get(spec.task).compose(spec, vocab_size, labels)


def summarize(spec: Spec) -> str:
    """The layer table and parameter count of `spec`'s model; reads the train split to fit the
    vocabulary (and labels) the model is sized by."""
    from kbuild.tasks.bundle import build

    bundle = build(spec, splits=("train",))
    model = TASKS.get(spec.task).build_model(spec, bundle)
    lines: list[str] = []
    model.summary(print_fn=lambda line, *_, **__: lines.append(line), line_length=100)
    return "\n".join(lines)
