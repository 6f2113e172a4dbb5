"""Typed, validated specs. `load_spec(path, overrides)` is the only entry point most code needs."""

from kbuild.spec.loader import load_spec
from kbuild.spec.root import Spec

__all__ = ["Spec", "load_spec"]
