"""`export:` what `kbuild export` writes by default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kbuild.spec.base import StrictModel


class ExportSpec(StrictModel):
    formats: list[Literal["savedmodel"]] = Field(default_factory=lambda: ["savedmodel"], min_length=1)
    batch_limit: int = Field(default=1024, ge=1)
    """Largest batch the serving signature is documented to take (the server caps requests)."""
