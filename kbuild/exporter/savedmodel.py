"""SavedModel export: atomic, self-contained (tokenisation in the graph), with metadata.json."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from kbuild import __version__
from kbuild.exporter.serving import Servable

METADATA = "metadata.json"


def write_savedmodel(servable: Servable, out_dir: Path) -> Path:
    """Write `servable` as a SavedModel at `out_dir`, replacing it only once complete."""
    import keras

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive = keras.export.ExportArchive()
        # Track every resource explicitly: untracked lookup tables break the saved graph.
        for trackable in servable.trackables():
            archive.track(trackable)
        for name, function in servable.functions.items():
            archive.add_endpoint(name, function)
        archive.write_out(str(staging), verbose=False)
        (staging / METADATA).write_text(json.dumps(_metadata(servable), indent=2, ensure_ascii=False), encoding="utf-8")
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(out_dir, backup)
            os.replace(staging, out_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _metadata(servable: Servable) -> dict:
    results = servable.folder.read_results()
    return {
        "kbuild_version": __version__,
        "name": servable.spec.name,
        "task": servable.spec.task,
        "spec_hash": servable.spec.fingerprint(),
        "labels": servable.labels,
        "max_length": servable.spec.preprocess.max_length,
        "signature": {name: _signature(function) for name, function in servable.functions.items()},
        "metrics": results.get("metrics", {}),
        "spec": servable.spec.resolved(),
    }


def _signature(function) -> dict:
    concrete = function.get_concrete_function()
    inputs = {spec.name: f"tf.{spec.dtype.name} {list(spec.shape)}" for spec in concrete.structured_input_signature[0]}
    return {"inputs": inputs, "outputs": sorted(concrete.structured_outputs)}


def read_metadata(export_dir: Path) -> dict:
    path = export_dir / METADATA
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
