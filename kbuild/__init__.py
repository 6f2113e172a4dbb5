"""kbuild: compile a declarative text-model spec into a Keras model, train it, export it.

The public API is deliberately small and every name is imported lazily, so `import kbuild` (and
`kbuild validate`) never pays for TensorFlow:

    spec = kbuild.load_spec("specs/quickstart.yaml")
    run = kbuild.train(spec)                 # -> Run (run folder, metrics)
    kbuild.export(run.path, "export/qs")     # -> SavedModel folder serving raw strings
"""

from __future__ import annotations

from kbuild.lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access (PEP 562).
_LAZY = {
    "load_spec": "kbuild.tasks.checks:load_spec",
    "Spec": "kbuild.spec:Spec",
    "build_model": "kbuild.tasks.compose:build_model",
    "train": "kbuild.training:train",
    "evaluate": "kbuild.evaluation:evaluate",
    "predict": "kbuild.prediction:predict",
    "export": "kbuild.exporter:export",
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
