"""`prune:` and `distill:`: the compression sections of a spec (read by kbuild.compression).

Typed here, below the tasks, so the root spec can hold them; what they do lives in
`kbuild/compression/`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kbuild.spec.base import StrictModel


class PruneSpec(StrictModel):
    """Magnitude pruning on a polynomial sparsity schedule (Zhu & Gupta 2017): sparsity rises
    from `initial_sparsity` at `begin` to `final_sparsity` at `end` as
    s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin))^3, recomputed every
    `frequency` optimizer steps; between updates the masks keep pruned weights at exactly zero."""

    final_sparsity: float = Field(ge=0.0, lt=1.0)
    """Fraction of the selected weights that are zero at the end of training, in [0, 1)."""
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Sparsity of the first mask (at `begin`), in [0, 1)."""
    begin: float = Field(default=0.0, ge=0.0, le=1.0)
    """When pruning starts, as a fraction of the run's optimizer steps."""
    end: float = Field(default=0.8, ge=0.0, le=1.0)
    """When `final_sparsity` is reached, as a fraction of the run's steps (fine-tuning with
    fixed masks follows)."""
    frequency: int = Field(default=10, ge=1)
    """Steps between mask updates."""
    scope: Literal["global", "layer"] = "layer"
    """`layer`: each weight tensor loses its own smallest fraction; `global`: one magnitude
    threshold over all selected weights (layers with small weights lose more)."""
    variables: str | None = None
    """Regex over variable paths (`re.search`, e.g. `dense.*/kernel`) choosing what to prune;
    default: the kernels (and recurrent kernels) of Dense, EinsumDense, LSTM and GRU layers."""
    embeddings: bool = False
    """Also prune Embedding tables (with the default selection)."""

    @field_validator("variables")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PruneSpec:
        if self.end < self.begin:
            raise ValueError(f"end ({self.end}) is before begin ({self.begin})")
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError(f"final_sparsity ({self.final_sparsity}) is below initial_sparsity ({self.initial_sparsity})")
        return self


class DistillSpec(StrictModel):
    """Knowledge distillation from a trained kbuild run of the same task: its outputs over the
    train (and `transfer`) texts are computed once, through the teacher's own serving path and
    tokenizer, cached in the student run's `cache/`, and the student learns from
    alpha * hard-label loss + (1 - alpha) * soft-target loss."""

    teacher: str
    """The teacher's run folder (`runs/NAME/STAMP`); its task and labels must match."""
    temperature: float = Field(default=2.0, gt=0.0)
    """Softening temperature of both distributions (`kl` only)."""
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    """Weight of the hard-label loss; 1 - alpha weighs the teacher's soft targets."""
    loss: Literal["kl", "mse"] = "kl"
    """`kl`: KL(teacher_T || student_T) * T^2 (Hinton et al. 2015); `mse`: squared error between
    logits (Tang et al. 2019)."""
    transfer: list[str] = Field(default_factory=list)
    """Extra unlabelled text files (csv with a text column, or one text a line) the teacher
    labels; the student trains on them with the soft loss only."""
    transfer_column: str | None = None
    """The text column of csv/tsv transfer files (e.g. `review` for IMDB); default
    `data.columns.text`."""
    batch_size: int = Field(default=64, ge=1)
    """Batch size of the one-off teacher pass."""
