"""SavedModel export: a new numbered version, written atomically, self-contained (tokenisation in
the graph), with metadata.json beside saved_model.pb.

`--quantize int8` (or `int4`) quantises a fresh copy of the run's model with Keras's own
`model.quantize` (`kbuild.layers.quantization`: Dense, EinsumDense and Embedding kernels, a causal
LM's tied output projection included; int8 also quantises their inputs on the fly, int4 is
weight-only) before it is written; every
other layer, LSTM and GRU included, stays float. The serving functions are rebuilt around the copy,
so a chat or language model's generation graph decodes with the quantised kernels. metadata.json
lists which layers were quantised and which stayed float.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from kbuild import __version__
from kbuild.exporter.formats import ExportFormat, LoadedExport, register_format
from kbuild.exporter.layout import METADATA, SAVED_MODEL, publish_version
from kbuild.exporter.serving import Servable
from kbuild.layers.quantization import NONE, WEIGHT_QUANTIZATIONS, QuantizedLayers, quantize_weights

SAVEDMODEL_QUANTIZATIONS = (NONE, *WEIGHT_QUANTIZATIONS.names())
"""`kbuild export --format savedmodel --quantize NAME`: float, or Keras-native int8 / weight-only int4."""


def write_savedmodel(servable: Servable, model_root: Path, quantize: str = "none") -> Path:
    """Write `servable` (its model quantised as `quantize`) as the next version under
    `model_root`; returns the version folder."""
    extra: dict[str, Any] = {"quantize": quantize}
    if quantize != "none":
        servable, layers = quantized_servable(servable, quantize)
        extra["quantized_layers"] = layers.as_dict()
    return publish_version(model_root, lambda staging: save_to(servable, staging, **extra))


def quantized_servable(servable: Servable, mode: str) -> tuple[Servable, QuantizedLayers]:
    """`servable` with a quantised copy of its model and serving functions rebuilt around it. The
    copy is a fresh load of the run's model, so the caller's `servable.model` stays float
    (quantising rewrites a model in place and cannot be undone)."""
    from kbuild.runs import load_trained_model
    from kbuild.tasks import TASKS

    model = load_trained_model(servable.folder)
    layers = quantize_weights(model, mode)
    functions = TASKS.get(servable.spec.task).serving_functions(model, servable.assets, servable.spec)
    return replace(servable, model=model, functions=functions), layers


def save_to(servable: Servable, folder: Path, **extra: Any) -> None:
    """The SavedModel and its metadata.json, written into an existing (staging) folder."""
    write_graph(servable.trackables(), servable.functions, folder)
    write_metadata(folder, metadata(servable, fmt="savedmodel", **extra))


def write_graph(trackables: list[Any], functions: dict[str, Any], folder: Path) -> None:
    """The SavedModel of `functions` (signature name -> tf.function), `trackables` (the model and
    the tokenizers' tables) saved with them."""
    import keras

    archive = keras.export.ExportArchive()
    # Track every resource explicitly: untracked lookup tables break the saved graph.
    for trackable in trackables:
        archive.track(trackable)
    for name, function in functions.items():
        archive.add_endpoint(name, function)
    archive.write_out(str(folder), verbose=False)


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
