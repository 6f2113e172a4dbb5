"""Lazy public names for package `__init__` modules (PEP 562), so importing `kbuild` (and
`kbuild --help`, `kbuild validate`) never pays for TensorFlow.

    __getattr__ = lazy_getattr(__name__, {"train": "kbuild.training:train"}, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `names` (public name -> "module:attribute") on first use
    and caching each in `namespace` (the package's globals), so later lookups are plain."""

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, attr = target.split(":")
        value = getattr(importlib.import_module(module_name), attr)
        namespace[name] = value
        return value

    return __getattr__
