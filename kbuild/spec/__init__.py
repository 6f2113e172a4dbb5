"""Typed, validated specs. `load_spec(path, overrides)` is the only entry point most code needs.

Names resolve lazily so that block and task modules can import `kbuild.spec.base` without
pulling in the loader (which imports them back).
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
