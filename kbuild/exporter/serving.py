"""The serving function: raw strings -> tokenizer (in graph) -> model -> task outputs.

Shared by the SavedModel exporter and by `kbuild predict` on a run folder, so a run and its export
answer identically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kbuild.names import TEXT_INPUT as INPUT_NAME  # noqa: F401  (the input's name, for callers)
from kbuild.runs import RunFolder, load_trained_run
from kbuild.spec import Spec
from kbuild.tasks import TASKS
from kbuild.tasks.bundle import Assets


@dataclass
class Servable:
    """A trained run ready to serve: spec, assets (tokenizers, labels), model and the task's
    tf.functions."""

    folder: RunFolder
    spec: Spec
    assets: Assets
    model: Any
    functions: dict[str, Any]
    """Signature name -> tf.function; `serving_default` takes raw strings."""

    @property
    def function(self) -> Any:
        return self.functions["serving_default"]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the texts `serving_default` takes, in order (the task's declared inputs)."""
        return TASKS.get(self.spec.task).serving_inputs(self.spec)

    @property
    def tokenizer(self) -> Any:
        return self.assets.tokenizer

    @property
    def labels(self) -> list[str]:
        return self.assets.labels

    @property
    def target_tokenizer(self) -> Any:
        """seq2seq with separate vocabularies: the target side's tokenizer."""
        return self.assets.target_tokenizer

    def trackables(self) -> list[Any]:
        return [self.model, *self.assets.trackables()]


def load_servable(run: str, check: Callable[[Spec], None] | None = None, quantize: str = "none") -> Servable:
    """The run's best model, its weights quantised as `quantize` (`kbuild.layers.quantization`),
    with its serving functions; `check(spec)` may refuse the run (by raising) before its assets
    and model are loaded."""
    from kbuild.layers.quantization import check_mode, quantize_weights

    check_mode(quantize)
    folder, spec, assets, model = load_trained_run(run, check)
    quantize_weights(model, quantize)
    functions = TASKS.get(spec.task).serving_functions(model, assets, spec)
    return Servable(folder, spec, assets, model, functions)
