"""`model:` embedding, a stack of registered blocks, pooling and the task head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from kbuild.blocks import BlockSpec
from kbuild.blocks.pooling import POOLINGS
from kbuild.spec.base import StrictModel

PoolingName = Literal[POOLINGS.names()]  # type: ignore[valid-type]


class EmbeddingSpec(StrictModel):
    dim: int = Field(default=128, ge=1)
    position: Literal["learned", "sine", "none"] = "learned"
    """Position information added to token embeddings (`none` suits recurrent encoders)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class HeadSpec(StrictModel):
    hidden: list[int] = Field(default_factory=list)
    """Sizes of the dense layers between pooling and the output layer."""
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class RegularizationSpec(StrictModel):
    """L1/L2 penalties on every kernel (dense, attention, recurrent); embeddings and biases excluded."""

    l1: float = Field(default=0.0, ge=0.0)
    l2: float = Field(default=0.0, ge=0.0)


class ModelSpec(StrictModel):
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    blocks: list[BlockSpec] = Field(default_factory=list)
    pooling: PoolingName = "mean"
    head: HeadSpec = Field(default_factory=HeadSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems (location inside `model`, message), e.g. heads not dividing dim."""
        dim = self.embedding.dim
        for i, block in enumerate(self.blocks):
            for loc, message in block.check(dim):
                yield ("blocks", i, *loc), message
            dim = block.output_dim(dim)
