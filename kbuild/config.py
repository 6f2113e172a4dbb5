"""Base class of every typed config: spec sections, block and decoder configs.

On the ground floor, because the block registry's configs (which `kbuild.spec` assembles into its
discriminated unions) sit below the spec package.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, defaults live in the class, attribute docstrings become the
    JSON Schema's descriptions."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True, allow_inf_nan=False)
