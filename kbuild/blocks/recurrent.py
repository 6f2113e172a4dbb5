"""Recurrent encoders: LSTM, BiLSTM and GRU, stackable, always returning the full sequence."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from kbuild.blocks.base import BLOCKS, BlockConfig, BlockDecoder, BuildContext


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

    def not_causal_reason(self) -> str | None:
        if self.bidirectional:
            return f"`{self.type}` is bidirectional (its backward pass reads later tokens); set bidirectional: false"
        return None

    def layer_name(self, ctx: BuildContext, i: int) -> str:
        return f"{ctx.name}_{self.cell.lower()}{i}"

    def decoder(self, model: Any, ctx: BuildContext) -> BlockDecoder:
        return RecurrentDecoder([model.get_layer(self.layer_name(ctx, i)) for i in range(self.layers)])

    def build(self, x: Any, ctx: BuildContext) -> Any:
        import keras

        layer_cls = getattr(keras.layers, self.cell)
        for i in range(self.layers):
            rnn = layer_cls(
                self.units,
                return_sequences=True,
                dropout=self.dropout,
                seed=ctx.seed + i,
                name=self.layer_name(ctx, i),
            )
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(
                    rnn, merge_mode=self.merge, name=f"{ctx.name}_bi{self.cell.lower()}{i}"
                )
            x = rnn(x)
        return x


class RecurrentDecoder(BlockDecoder):
    """Carries each layer's recurrent state (LSTM: h and c; GRU: h) from one call to the next, so
    a new token costs one cell step per layer, whatever came before."""

    def __init__(self, layers: list[Any]):
        self.layers = layers

    def initial_state(self, batch: int, length: int) -> tuple:
        from keras import ops

        states = []
        for layer in self.layers:
            sizes = layer.cell.state_size if isinstance(layer.cell.state_size, (list, tuple)) else [layer.cell.state_size]
            states.append(tuple(ops.zeros((batch, size), layer.compute_dtype) for size in sizes))
        return tuple(states)

    def step(self, x: Any, state: tuple, index: Any, mask: Any = None) -> tuple[Any, tuple]:
        new_state = []
        for layer, layer_state in zip(self.layers, state, strict=True):
            # The layer's own loop over just these tokens, from the carried state; Keras RNNs
            # carry the state unchanged through masked steps.
            _, x, states = layer.inner_loop(sequences=x, initial_state=list(layer_state), mask=mask, training=False)
            new_state.append(tuple(states) if isinstance(states, (list, tuple)) else (states,))
        return x, tuple(new_state)


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
