"""Text classification (binary and multi-class): softmax head, cross-entropy, accuracy, macro-F1."""

from __future__ import annotations

from kbuild.tasks.base import TASKS, Task


class ClassificationTask(Task):
    name = "classification"


TASKS.register("classification")(ClassificationTask())
