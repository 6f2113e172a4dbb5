"""Compression during training: `prune:` (kbuild.compression.pruning) and `distill:`
(kbuild.compression.distillation).

`Compression` is one of the training loop's extensions (kbuild.training.extensions), with the
same hooks, written out here because this package sits below training: `prepare` (the data
bundle's train split, with the teacher's targets), `loss` / `metrics` (the task's, wrapped for
distillation), `adjust` (nothing), `callbacks` (the pruning masks), `checkpoint_ready` (no best
model before the final sparsity) and `results` (results.json). Without either section every hook
is the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbuild.errors import TrainingError
from kbuild.runs import RunFolder
from kbuild.spec import Spec


class Compression:
    """The run's compression plan, built from its spec and run folder."""

    def __init__(self, spec: Spec, folder: RunFolder, log: Callable[[str], None]):
        self.spec, self.folder, self.log = spec, folder, log
        self.pruning: Any = None
        self.teacher: Any = None
        if spec.distill is not None and spec.train.class_weight is not None:
            raise TrainingError("train.class_weight cannot be combined with distill: (the soft targets carry no class ids)")

    @property
    def active(self) -> bool:
        return self.spec.prune is not None or self.spec.distill is not None

    def prepare(self, bundle: Any) -> Any:
        """The bundle, its train split carrying the teacher's targets under `distill:`."""
        if self.spec.distill is None:
            return bundle
        from kbuild.compression.distillation import attach_teacher

        self.teacher = attach_teacher(self.spec, bundle, self.folder, self.log)
        return bundle

    def loss(self, loss: Any) -> Any:
        if self.spec.distill is None:
            return loss
        from kbuild.layers.distillation import DistillationLoss

        d = self.spec.distill
        return DistillationLoss(alpha=d.alpha, temperature=d.temperature, kind=d.loss)

    def metrics(self, metrics: list[Any]) -> list[Any]:
        if self.spec.distill is None:
            return metrics
        from kbuild.layers.distillation import HardLabels

        return [HardLabels(metric) for metric in metrics]

    def adjust(self, model: Any) -> None:
        return None

    def callbacks(self, total_steps: int) -> list[Any]:
        if self.spec.prune is None:
            return []
        from kbuild.compression.pruning import Pruning

        self.pruning = Pruning(self.spec.prune, total_steps)
        return [self.pruning]

    def checkpoint_ready(self) -> bool:
        """Whether the best-model checkpoint may save now (pruned runs: at the final sparsity)."""
        return self.pruning is None or self.pruning.at_final

    def results(self, metrics: dict, best: Callable[[], Any]) -> dict:
        """results.json additions: `pruning` (sparsity per layer), `distillation` (teacher
        metrics, retention), `nonzero_parameters`; `best()` loads the saved best model."""
        if not self.active:
            return {}
        from kbuild.compression.pruning import nonzero_parameters, sparsity_report

        model = best()
        out: dict[str, Any] = {"nonzero_parameters": nonzero_parameters(model)}
        if self.spec.prune is not None:
            out["pruning"] = sparsity_report(model, self.spec.prune)
        if self.teacher is not None:
            out["distillation"] = self.teacher.report(metrics)
        return out


def run_summary(results: dict, split: str) -> dict:
    """What `kbuild evaluate` adds for a compressed run, read from its results.json: `sparsity`
    (overall and per pruned variable) and `retention` on `split` (student / teacher, with the
    teacher's run). Empty for a run trained without compression."""
    out: dict[str, Any] = {}
    if "pruning" in results:
        out["sparsity"] = results["pruning"]["sparsity"]
        out["sparsity_by_variable"] = results["pruning"]["layers"]
    if "nonzero_parameters" in results:
        out["nonzero_parameters"] = results["nonzero_parameters"]
        out["parameters"] = results.get("parameters")
    if "distillation" in results:
        out["teacher"] = results["distillation"]["teacher"]
        out["retention"] = results["distillation"]["retention"].get(split, {})
    return out
