"""Compression during training: `prune:` (kbuild.compression.pruning).

The training loop talks to one `Compression` object, so its hooks stay a few lines in
kbuild/training/fit.py: `prepare` (the data bundle), `loss` / `metrics` (the task's),
`callbacks` (the pruning masks), `checkpoint_ready` (no best model before the final sparsity)
and `results` (results.json). Without a compression section every hook is the identity.
"""

from __future__ import annotations

from typing import Any

from kbuild.runs import RunFolder
from kbuild.spec import Spec


class Compression:
    """The run's compression plan, built from its spec once the step count is known."""

    def __init__(self, spec: Spec, folder: RunFolder, total_steps: int):
        self.spec, self.folder, self.total_steps = spec, folder, total_steps
        self.pruning: Any = None

    @property
    def active(self) -> bool:
        return self.spec.prune is not None

    def prepare(self, bundle: Any, log: Any) -> Any:
        return bundle

    def loss(self, loss: Any) -> Any:
        return loss

    def metrics(self, metrics: list[Any]) -> list[Any]:
        return metrics

    def callbacks(self) -> list[Any]:
        if self.spec.prune is None:
            return []
        from kbuild.compression.pruning import Pruning

        self.pruning = Pruning(self.spec.prune, self.total_steps)
        return [self.pruning]

    def checkpoint_ready(self) -> bool:
        """Whether the best-model checkpoint may save now (pruned runs: at the final sparsity)."""
        return self.pruning is None or self.pruning.at_final

    def results(self, best: Any, metrics: dict) -> dict:
        """results.json additions: `pruning` (sparsity per layer), `nonzero_parameters`."""
        if not self.active:
            return {}
        from kbuild.compression.pruning import nonzero_parameters, sparsity_report

        return {"nonzero_parameters": nonzero_parameters(best), "pruning": sparsity_report(best, self.spec.prune)}
