"""SavedModel export: a new numbered version, written atomically, self-contained (tokenisation in
the graph), with metadata.json beside saved_model.pb.

`--quantize int8` applies Keras's own `model.quantize("int8")` to a fresh copy of the run's model
before it is written: Dense, EinsumDense and Embedding weights become int8 with per-channel
scales (activations are quantised on the fly); every other layer, LSTM and GRU included, stays
float. metadata.json lists which layers were quantised and which stayed float.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from kbuild import __version__
from kbuild.exporter.formats import ExportFormat, LoadedExport, register_format
from kbuild.exporter.layout import METADATA, SAVED_MODEL, publish_version
from kbuild.exporter.serving import Servable

SAVEDMODEL_QUANTIZATIONS = ("none", "int8")
"""`kbuild export --format savedmodel --quantize NAME`: float, or Keras-native int8."""


def write_savedmodel(servable: Servable, model_root: Path, quantize: str = "none") -> Path:
    """Write `servable` (its model quantised as `quantize`) as the next version under
    `model_root`; returns the version folder."""
    extra: dict[str, Any] = {"quantize": quantize}
    if quantize == "int8":
        servable, extra["quantized_layers"] = int8_servable(servable)
    return publish_version(model_root, lambda staging: save_to(servable, staging, **extra))


def int8_servable(servable: Servable) -> tuple[Servable, dict[str, list[str]]]:
    """`servable` with an int8 copy of its model and serving functions rebuilt around it, and
    {"int8": layer paths, "float": paths of weighted layers Keras left float}. The copy is a fresh
    load of the run's model, so the caller's `servable.model` stays float (quantize() rewrites a
    model in place and cannot be undone)."""
    from kbuild.runs import load_trained_model
    from kbuild.tasks import TASKS

    model = load_trained_model(servable.folder)
    with warnings.catch_warnings():  # one warning per layer without int8 weights (Dropout, LSTMCell, ...)
        warnings.filterwarnings("ignore", message=r".*does not have a `quantize` method")
        model.quantize("int8")
    quantized, left_float = [], []
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "quantization_mode", None) == "int8":
            quantized.append(layer.path)
        elif layer._trainable_variables and not list(layer._flatten_layers(include_self=False)):
            left_float.append(layer.path)
    if not quantized:
        raise ValueError(f"{servable.folder.path}: int8 quantisation found no Dense, EinsumDense or Embedding layer")
    functions = TASKS.get(servable.spec.task).serving_functions(model, servable.assets, servable.spec)
    return replace(servable, model=model, functions=functions), {"int8": quantized, "float": left_float}


def save_to(servable: Servable, folder: Path, **extra: Any) -> None:
    """The SavedModel and its metadata.json, written into an existing (staging) folder."""
    import keras

    archive = keras.export.ExportArchive()
    # Track every resource explicitly: untracked lookup tables break the saved graph.
    for trackable in servable.trackables():
        archive.track(trackable)
    for name, function in servable.functions.items():
        archive.add_endpoint(name, function)
    archive.write_out(str(folder), verbose=False)
    write_metadata(folder, metadata(servable, fmt="savedmodel", **extra))


def metadata(servable: Servable, fmt: str, **extra) -> dict:
    """What a server or a reader needs beside the graph: task, labels, signature, metrics, spec."""
    results = servable.folder.read_results()
    return {
        "kbuild_version": __version__,
        "format": fmt,
        "name": servable.spec.name,
        "task": servable.spec.task,
        "inputs": list(servable.inputs),
        "spec_hash": servable.spec.fingerprint(),
        "labels": servable.labels,
        "max_length": servable.spec.preprocess.max_length,
        "batch_limit": servable.spec.export.batch_limit,
        "signature": {name: _signature(function) for name, function in servable.functions.items()},
        "metrics": results.get("metrics", {}),
        **extra,
        "spec": servable.spec.resolved(),
    }


def write_metadata(folder: Path, data: dict) -> None:
    (folder / METADATA).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def _signature(function) -> dict:
    concrete = function.get_concrete_function()
    inputs = {spec.name: f"tf.{spec.dtype.name} {list(spec.shape)}" for spec in concrete.structured_input_signature[0]}
    return {"inputs": inputs, "outputs": sorted(concrete.structured_outputs)}


def read_metadata(export_dir: Path) -> dict:
    path = export_dir / METADATA
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_savedmodel(version: Path, metadata: dict) -> LoadedExport:
    """The SavedModel's `serving_default` (and `explain`), called with the texts by input name."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tf-text ops the graph may use)

    loaded = tf.saved_model.load(str(version))
    serve, explain = loaded.signatures["serving_default"], loaded.signatures.get("explain")
    return LoadedExport(lambda texts: serve(**texts), metadata, None if explain is None else (lambda texts: explain(**texts)))


register_format("savedmodel", ExportFormat(
    write_savedmodel, quantizations=SAVEDMODEL_QUANTIZATIONS,
    detect=lambda version: (version / SAVED_MODEL).is_file(), load=load_savedmodel))
