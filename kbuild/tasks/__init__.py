"""Task registry: one module per task. Importing this package registers them all (TF-free)."""

from kbuild.tasks import (  # noqa: F401  (registration side effect)
    chat,
    classification,
    extractive_qa,
    language_model,
    masked_lm,
    multilabel,
    regression,
    seq2seq,
    tagging,
    vae,
)
from kbuild.tasks.base import TASKS, SplitData, Task

__all__ = ["TASKS", "SplitData", "Task"]
