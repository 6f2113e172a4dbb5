"""Transformer encoder stack (multi-head self-attention + feed-forward)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from kbuild.blocks.base import BLOCKS, BlockConfig, BuildContext


@BLOCKS.register("transformer_encoder")
class TransformerEncoderBlock(BlockConfig):
    """`layers` Transformer encoder layers with multi-head self-attention over the padding mask.

    Example: `{type: transformer_encoder, layers: 2, heads: 4, ff_dim: 256, dropout: 0.1}`
    """

    type: Literal["transformer_encoder"] = "transformer_encoder"
    layers: int = Field(default=2, ge=1, le=64)
    heads: int = Field(default=4, ge=1)
    ff_dim: int = Field(default=256, ge=1)
    head_dim: int | None = Field(default=None, ge=1)
    """Size of each attention head; default dim // heads (the keras-io examples use head_dim = dim)."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    activation: Literal["relu", "gelu"] = "relu"
    norm: Literal["post", "pre"] = "post"
    """`post` normalises after each residual (original Transformer), `pre` before (more stable deep)."""
    norm_epsilon: float = Field(default=1e-5, gt=0)

    def check(self, input_dim: int) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.head_dim is None and input_dim % self.heads:
            yield (
                ("heads",),
                f"Expected `heads` to divide the embedding size ({input_dim}); received "
                f"heads={self.heads}. Choose a divisor of {input_dim} or set `head_dim`.",
            )

    def build(self, x: Any, ctx: BuildContext) -> Any:
        from kbuild.layers import TransformerEncoder

        for i in range(self.layers):
            x = TransformerEncoder(
                heads=self.heads,
                head_dim=self.head_dim or ctx.dim // self.heads,
                ff_dim=self.ff_dim,
                dropout=self.dropout,
                activation=self.activation,
                norm_first=self.norm == "pre",
                norm_epsilon=self.norm_epsilon,
                seed=ctx.seed + i,
                name=f"{ctx.name}_layer{i}",
            )(x)
        if self.norm == "pre":
            # Pre-norm leaves the residual stream unnormalised; close the stack with one norm.
            import keras

            x = keras.layers.LayerNormalization(epsilon=self.norm_epsilon, name=f"{ctx.name}_final_norm")(x)
        return x
