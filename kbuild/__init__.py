"""kbuild: compile a declarative text-model spec into a Keras model, train it, export it.

The public API is deliberately small and every name is imported lazily, so `import kbuild` (and
`kbuild validate`) never pays for TensorFlow:

    spec = kbuild.load_spec("specs/quickstart.yaml")
    run = kbuild.train(spec)                 # -> Run (run folder, metrics)
    kbuild.export(run.path, "export/qs")     # -> SavedModel folder serving raw strings
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access (PEP 562).
_LAZY = {
    "load_spec": "kbuild.spec:load_spec",
    "Spec": "kbuild.spec:Spec",
    "build_model": "kbuild.model:build_model",
    "train": "kbuild.training:train",
    "evaluate": "kbuild.evaluation:evaluate",
    "predict": "kbuild.prediction:predict",
    "export": "kbuild.exporter:export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kbuild' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
