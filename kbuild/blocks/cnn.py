"""Kim (2014)'s text CNN: parallel convolutions of several widths, ReLU, max over time.

The block keeps the contract of every block ([batch, time, dim] in, [batch, time, dim'] out, the
padding mask kept) and leaves max-over-time to `model.pooling: max`, which already ignores padding
and is already exported and served with every classifier. Returning a pooled vector instead would
break that contract: nothing could follow the block, a tagger could not use it, and pooling would
need a "none" mode just for it. So the interplay is a spec rule instead: when `cnn` is the last
block of a task that pools, `model.pooling` must be `max` (see `pooling_issue`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from kbuild.blocks.base import BLOCKS, BlockConfig, BuildContext


@BLOCKS.register("cnn")
class CNNBlock(BlockConfig):
    """Kim (2014) text CNN. Example: `{type: cnn, widths: [3, 4, 5], filters: 100}` with
    `pooling: max` and `head: {dropout: 0.5}` (Kim's dropout is on the pooled vector: the head's).
    Output size: `filters * len(widths)`."""

    type: Literal["cnn"] = "cnn"
    widths: list[int] = Field(default_factory=lambda: [3, 4, 5], min_length=1, max_length=16)
    """Convolution window sizes in tokens, one convolution each (all run in parallel)."""
    filters: int = Field(default=100, ge=1)
    """Feature maps per width."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the per-position features, before pooling."""

    @field_validator("widths")
    @classmethod
    def _distinct_positive_widths(cls, widths: list[int]) -> list[int]:
        if any(w < 1 for w in widths):
            raise ValueError(f"every width must be at least 1; received {widths}")
        if len(set(widths)) != len(widths):
            raise ValueError(f"widths must be distinct (each names its convolution layer); received {widths}")
        return widths

    def output_dim(self, input_dim: int) -> int:
        return self.filters * len(self.widths)

    def not_causal_reason(self) -> str | None:
        return f"`{self.type}` convolutions are centred, so each position reads the tokens after it"

    def pooling_issue(self, pooling: str) -> str | None:
        if pooling != "max":
            return (f"a final `cnn` block is pooled by max over time (Kim 2014): set model.pooling: max; "
                    f"received pooling={pooling!r}")
        return None

    def build(self, x: Any, ctx: BuildContext) -> Any:
        from kbuild.layers.text_cnn import TextCNN

        return TextCNN(self.filters, tuple(self.widths), self.dropout, seed=ctx.seed, name=f"{ctx.name}_cnn")(x)
