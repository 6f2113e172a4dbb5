"""The task's own epoch callbacks (a tagger's entity F1), run before the checkpoints read their metrics."""

from __future__ import annotations

from typing import Any

from kbuild.training.extensions.base import Extension


class TaskCallbacks(Extension):
    """`Task.epoch_callbacks(spec, bundle)`: metrics the task computes at each epoch's end, in the
    logs before the best-model checkpoint and early stopping look for the monitored one."""

    bundle: Any = None

    def prepare(self, bundle: Any) -> Any:
        self.bundle = bundle
        return bundle

    def callbacks(self, total_steps: int) -> list[Any]:
        from kbuild.tasks import TASKS

        spec = self.start.spec
        return list(TASKS.get(spec.task).epoch_callbacks(spec, self.bundle))
