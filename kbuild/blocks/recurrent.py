"""Recurrent encoders: LSTM, BiLSTM and GRU, stackable, always returning the full sequence."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from kbuild.blocks.base import BLOCKS, BlockConfig, BuildContext


class _RecurrentBlock(BlockConfig):
    units: int = Field(default=64, ge=1)
    layers: int = Field(default=1, ge=1, le=16)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on each layer's inputs (not recurrent dropout, which would disable cuDNN kernels)."""
    bidirectional: bool = False
    merge: Literal["concat", "sum"] = "concat"
    """How a bidirectional layer combines its two directions."""

    cell: ClassVar[str]

    def output_dim(self, input_dim: int) -> int:
        both = self.bidirectional and self.merge == "concat"
        return self.units * (2 if both else 1)

    def build(self, x: Any, ctx: BuildContext) -> Any:
        import keras

        layer_cls = getattr(keras.layers, self.cell)
        for i in range(self.layers):
            rnn = layer_cls(
                self.units,
                return_sequences=True,
                dropout=self.dropout,
                seed=ctx.seed + i,
                name=f"{ctx.name}_{self.cell.lower()}{i}",
            )
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(
                    rnn, merge_mode=self.merge, name=f"{ctx.name}_bi{self.cell.lower()}{i}"
                )
            x = rnn(x)
        return x


@BLOCKS.register("lstm")
class LSTMBlock(_RecurrentBlock):
    """Stacked LSTM. Example: `{type: lstm, units: 128, layers: 2, bidirectional: true}`"""

    type: Literal["lstm"] = "lstm"
    cell: ClassVar[str] = "LSTM"


@BLOCKS.register("bilstm")
class BiLSTMBlock(_RecurrentBlock):
    """Bidirectional LSTM: the same as `lstm` with `bidirectional: true`."""

    type: Literal["bilstm"] = "bilstm"
    bidirectional: bool = True
    cell: ClassVar[str] = "LSTM"


@BLOCKS.register("gru")
class GRUBlock(_RecurrentBlock):
    """Stacked GRU. Example: `{type: gru, units: 128, bidirectional: true}`"""

    type: Literal["gru"] = "gru"
    cell: ClassVar[str] = "GRU"
