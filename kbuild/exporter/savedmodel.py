"""SavedModel export: a new numbered version, written atomically, self-contained (tokenisation in
the graph), with metadata.json beside saved_model.pb."""

from __future__ import annotations

import json
from pathlib import Path

from kbuild import __version__
from kbuild.exporter.formats import ExportFormat, register_format
from kbuild.exporter.layout import METADATA, publish_version
from kbuild.exporter.serving import Servable


def write_savedmodel(servable: Servable, model_root: Path) -> Path:
    """Write `servable` as the next version under `model_root`; returns the version folder."""
    return publish_version(model_root, lambda staging: save_to(servable, staging))


def save_to(servable: Servable, folder: Path) -> None:
    """The SavedModel and its metadata.json, written into an existing (staging) folder."""
    import keras

    archive = keras.export.ExportArchive()
    # Track every resource explicitly: untracked lookup tables break the saved graph.
    for trackable in servable.trackables():
        archive.track(trackable)
    for name, function in servable.functions.items():
        archive.add_endpoint(name, function)
    archive.write_out(str(folder), verbose=False)
    write_metadata(folder, metadata(servable, fmt="savedmodel"))


def metadata(servable: Servable, fmt: str, **extra) -> dict:
    """What a server or a reader needs beside the graph: task, labels, signature, metrics, spec."""
    results = servable.folder.read_results()
    return {
        "kbuild_version": __version__,
        "format": fmt,
        "name": servable.spec.name,
        "task": servable.spec.task,
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


def _write(servable: Servable, model_root: Path, quantize: str) -> Path:
    return write_savedmodel(servable, model_root)


register_format("savedmodel", ExportFormat(_write))
