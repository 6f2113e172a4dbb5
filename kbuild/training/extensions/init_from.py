"""`init_from: RUN`: the backbone starts from a trained run's (`kbuild.training.init_from`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbuild.training.extensions.base import Extension
from kbuild.training.init_from import copy_backbone


class InitFrom(Extension):
    """Copies the source run's backbone weights into the new model on a fresh start; a resume
    from a checkpoint keeps the checkpoint's. The tokenizer came with the spec (`init_source`)."""

    report: dict | None = None

    def adjust(self, model: Any) -> None:
        source, log = self.start.source, self.start.log
        if source is None:
            return
        if self.start.from_checkpoint:
            log(f"{source.describe()}: resuming, so the weights come from the checkpoint")
            self.report = {"run": str(source.folder.path), "task": source.spec.task, "copied": "before the resume"}
            return
        self.report = copy_backbone(model, source, self.start.spec)
        log(f"init_from {self.report['run']}: copied {self.report['tensors']} tensors "
            f"({self.report['parameters']:,} parameters) into {self.report['layers']} layers")

    def results(self, metrics: dict, best: Callable[[], Any]) -> dict:
        return {"init_from": self.report}
