"""Task registry: one module per task. Importing this package registers them all (TF-free)."""

from kbuild.tasks import classification, language_model, multilabel, regression, tagging  # noqa: F401  (registration side effect)
from kbuild.tasks.base import TASKS, SplitData, Task

__all__ = ["TASKS", "SplitData", "Task"]
