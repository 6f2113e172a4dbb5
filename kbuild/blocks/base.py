"""What every block shares: a config class that validates itself and knows how to build itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kbuild.config import StrictModel
from kbuild.registry import Registry

BLOCKS: Registry[type[BlockConfig]] = Registry("block")


@dataclass(frozen=True)
class BuildContext:
    """What a block may need beyond its own config while it is being built."""

    dim: int
    """Feature size of the block's input."""
    max_length: int
    seed: int
    name: str
    """Unique layer-name prefix for this block (e.g. `block0`)."""


class BlockConfig(StrictModel):
    """A sequence-to-sequence building block: [batch, time, dim] in, [batch, time, dim'] out.

    Subclasses set `type` as a Literal, register with `@BLOCKS.register(name)`, and implement
    `build`, importing Keras inside it so that validating a spec never loads TensorFlow.
    """

    type: str

    def build(self, x: Any, ctx: BuildContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, input_dim: int) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems as (location relative to this block, message); none by default."""
        return iter(())

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    def not_causal_reason(self) -> str | None:
        """Why a position's output may depend on later positions (None when it cannot): a
        language model refuses such blocks."""
        return f"`{self.type}` attends to every position, later ones included"

    def pooling_issue(self, pooling: str) -> str | None:
        """Why `model.pooling` cannot pool this block's output when it is the last block of a
        task that pools (e.g. `cnn` wants max over time); None when any pooling fits."""
        return None

    def decoder(self, model: Any, ctx: BuildContext) -> BlockDecoder:
        """A `BlockDecoder` over this block's trained layers in `model` (generation)."""
        raise NotImplementedError(f"block `{self.type}` cannot generate step by step")


class BlockDecoder:
    """Runs one trained block a few tokens at a time, carrying a state between calls: a key/value
    cache for attention, (h, c) for an LSTM. Generation calls `step` once per new token.
    Backend-neutral (keras.ops)."""

    bounded: bool = False
    """True when the state has a fixed length (an attention cache): generation then slides."""

    def initial_state(self, batch: int, length: int) -> tuple:
        """Empty state for `batch` sequences of at most `length` tokens."""
        raise NotImplementedError

    def step(self, x: Any, state: tuple, index: Any, mask: Any = None) -> tuple[Any, tuple]:
        """(outputs [batch, t, dim'], new state) for inputs [batch, t, dim] at positions
        index..index+t-1. A recurrent state must skip the steps where `mask` [batch, t] is False;
        a positional cache may ignore `mask`."""
        raise NotImplementedError
