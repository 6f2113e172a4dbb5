"""Base class of every spec section (defined on the ground floor, `kbuild.config`, so block
configs below the spec share it)."""

from kbuild.config import StrictModel

__all__ = ["StrictModel"]
