"""Typed, validated specs: one pydantic model per section, the YAML/JSON loader with line numbers,
`extends:`, `--set` and `${ENV}`, and error formatting. Imports no task and no TensorFlow.

`kbuild.spec.load_spec` checks the spec's own fields and cross-field rules; `kbuild.load_spec`
(`kbuild.tasks.checks`) adds what the tasks know (task names, a `crf` head on a classifier, ...).
Names resolve lazily so that importing one section's module stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {"load_spec": "kbuild.spec.loader", "Spec": "kbuild.spec.root"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kbuild.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
