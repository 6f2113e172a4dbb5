"""`init_from: RUN`: a new run starts its backbone (embedding + blocks) and its tokenizer from a
trained run, such as a masked_lm pretraining run before a classifier.

Two steps, both at train start:

- `init_source(spec)` opens the run and gives the spec the run's tokenizer: a spec that leaves
  `preprocess.tokenizer` unset (or sets it to exactly the run's) gets the run's section, and the
  run's vocabulary is loaded instead of fitting one (the embedding's rows mean those tokens). A
  spec that sets a different tokenizer is an error: the copied embedding would mean other tokens.
- `copy_backbone(model, source, spec)` copies, into every backbone layer of the new model
  (`kbuild.model.backbone_layers`), the weights of the source model's layer of the same name,
  matched by weight path and shape. A backbone layer the source lacks, a layer of another kind or
  a weight of another shape is an error naming the layer and both shapes; nothing is copied then.
  The head (pooling, dense layers, outputs) starts fresh.

A resumed run's weights come from its checkpoint, so the copy happens on a fresh start only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbuild.errors import TrainingError
from kbuild.runs import RunFolder, load_trained_model, open_latest_run

if TYPE_CHECKING:
    from kbuild.spec import Spec


@dataclass(frozen=True)
class InitSource:
    """The run a spec's `init_from` names, opened: its folder and spec."""

    folder: RunFolder
    spec: Spec

    def describe(self) -> str:
        return f"init_from {self.folder.path} ({self.spec.task} run {self.spec.name})"


def init_source(spec: Spec) -> tuple[Spec, InitSource | None]:
    """`spec` with the source run's tokenizer, and the source; `(spec, None)` without `init_from`."""
    if spec.init_from is None:
        return spec, None
    from kbuild.tasks import TASKS
    from kbuild.tasks.checks import load_spec

    folder = open_latest_run(spec.init_from)
    source = InitSource(folder, load_spec(folder.spec))
    if source.spec.model.backbone is not None or not TASKS.get(source.spec.task).backbone_init:
        raise TrainingError(f"{source.describe()}: its model is not kbuild's own embedding and blocks "
                            "(a pretrained checkpoint or an encoder-decoder), so there is no backbone to start from")
    theirs = source.spec.preprocess.tokenizer
    mine = spec.preprocess.tokenizer
    if "tokenizer" in spec.preprocess.model_fields_set and mine.model_dump() != theirs.model_dump():
        raise TrainingError(
            f"{source.describe()}: the spec sets preprocess.tokenizer {_short(mine)}, but the run's backbone was "
            f"trained with {_short(theirs)}; the run's tokenizer and vocabulary are used: remove "
            "preprocess.tokenizer or set it to the run's"
        )
    started = spec.model_copy(deep=True)
    started.preprocess.tokenizer = theirs.model_copy(deep=True)
    return started, source


def copy_backbone(model: Any, source: InitSource, spec: Spec) -> dict:
    """Copy the source run's backbone weights into `model`'s backbone layers; returns what
    results.json records (`run`, `layers`, `tensors`, `parameters`)."""
    import math

    from kbuild.model import backbone_layers

    source_model = load_trained_model(source.folder)
    by_name = {layer.name: layer for layer in source_model.layers}
    pairs = []
    layers = backbone_layers(model, spec)
    for layer in layers:
        pairs.extend(_matched_weights(layer, by_name.get(layer.name), source))
    for target, weights in pairs:
        target.assign(weights)
    parameters = sum(math.prod(target.shape) for target, _ in pairs)
    return {"run": str(source.folder.path), "task": source.spec.task, "layers": len(layers),
            "tensors": len(pairs), "parameters": parameters}


def _matched_weights(layer: Any, source_layer: Any, source: InitSource) -> list[tuple[Any, Any]]:
    """(new variable, source value) for each weight of `layer`, or a TrainingError."""
    import keras

    if source_layer is None:
        raise TrainingError(f"{source.describe()}: the new model's backbone layer {layer.name!r} has no layer of "
                            "that name in the run's model; the downstream spec may change dropout, pooling and head, "
                            "not the backbone's blocks")
    if type(source_layer) is not type(layer):
        raise TrainingError(f"{source.describe()}: layer {layer.name!r} is a {type(layer).__name__} in the new model "
                            f"but a {type(source_layer).__name__} in the run's")
    theirs = {_relative(weight.path, source_layer.name): weight for weight in source_layer.weights}
    pairs = []
    for weight in layer.weights:
        path = _relative(weight.path, layer.name)
        found = theirs.get(path)
        if found is None or tuple(found.shape) != tuple(weight.shape):
            shape = "no such weight" if found is None else f"shape {tuple(found.shape)}"
            raise TrainingError(
                f"{source.describe()}: layer {layer.name!r}, weight {path}: shape {tuple(weight.shape)} in the new "
                f"model, {shape} in the run's; the downstream spec may change dropout, pooling and head, not the "
                "backbone's shape (embedding dim, max_length under learned positions, vocabulary, block sizes)"
            )
        pairs.append((weight, keras.ops.convert_to_numpy(found)))
    return pairs


def _relative(path: str, layer_name: str) -> str:
    """A weight's path inside its layer (`attention/query/kernel`)."""
    return path.removeprefix(f"{layer_name}/")


def _short(tokenizer: Any) -> str:
    settings = tokenizer.model_dump()
    return "{" + ", ".join(f"{key}: {value}" for key, value in settings.items()) + "}"
