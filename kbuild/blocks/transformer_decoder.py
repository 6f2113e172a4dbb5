"""Causal Transformer decoder stack (masked self-attention + feed-forward), for language models.

Built from keras_hub's `TransformerDecoder`, whose self-attention keeps a key/value cache, so
generation computes one position per new token instead of re-running the whole window.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, Protocol

from pydantic import Field

from kbuild.blocks.base import BLOCKS, BlockConfig, BlockDecoder, BuildContext


@BLOCKS.register("transformer_decoder")
class TransformerDecoderBlock(BlockConfig):
    """`layers` decoder layers, each position attending only to itself and earlier positions.

    Example: `{type: transformer_decoder, layers: 4, heads: 4, ff_dim: 512, dropout: 0.1, norm: pre}`
    """

    type: Literal["transformer_decoder"] = "transformer_decoder"
    layers: int = Field(default=2, ge=1, le=64)
    heads: int = Field(default=4, ge=1)
    ff_dim: int = Field(default=512, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    activation: Literal["relu", "gelu"] = "gelu"
    norm: Literal["post", "pre"] = "pre"
    """`pre` (GPT-2 style, normalise before each branch; closes with one final norm) or `post`."""
    norm_epsilon: float = Field(default=1e-5, gt=0)

    def check(self, input_dim: int):
        if input_dim % self.heads:
            yield (
                ("heads",),
                f"Expected `heads` to divide the embedding size ({input_dim}); received heads={self.heads}.",
            )

    def not_causal_reason(self) -> str | None:
        return None

    def build(self, x: Any, ctx: BuildContext) -> Any:
        return decoder_stack(x, self, ctx.name, self.norm_epsilon)

    def decoder(self, model: Any, ctx: BuildContext) -> BlockDecoder:
        layers = stack_layers(model, ctx.name, self.layers)
        norm = model.get_layer(f"{ctx.name}_final_norm") if self.norm == "pre" else None
        return TransformerDecoderCache(layers, norm, self.heads, ctx.dim // self.heads)


class DecoderStackConfig(Protocol):
    layers: int
    heads: int
    ff_dim: int
    dropout: float
    activation: str
    norm: str


def decoder_stack(x: Any, config: DecoderStackConfig, name: str, epsilon: float = 1e-5,
                  encoded: Any = None, encoder_mask: Any = None) -> Any:
    """`config.layers` keras_hub TransformerDecoder layers named `{name}_layer{i}` (then
    `{name}_final_norm` for `norm: pre`): causal self-attention, and cross-attention over
    `encoded` when given (an encoder-decoder's decoder; `encoder_mask` is its padding)."""
    import keras
    import keras_hub

    for i in range(config.layers):
        layer = keras_hub.layers.TransformerDecoder(
            intermediate_dim=config.ff_dim,
            num_heads=config.heads,
            dropout=config.dropout,
            activation=config.activation,
            layer_norm_epsilon=epsilon,
            normalize_first=config.norm == "pre",
            name=f"{name}_layer{i}",
        )
        with warnings.catch_warnings():
            # keras_hub reads the padding masks itself; Keras still warns that the inner
            # query/key/value projections drop them, which is noise here.
            warnings.filterwarnings("ignore", message=".*does not support masking.*")
            if encoded is None:
                x = layer(x)
            else:
                x = layer(x, encoder_sequence=encoded, encoder_padding_mask=encoder_mask)
    if config.norm == "pre":
        x = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_final_norm")(x)
    return x


def stack_layers(model: Any, name: str, count: int) -> list[Any]:
    """The `count` TransformerDecoder layers `decoder_stack` built under `name`, found in `model`."""
    return [model.get_layer(f"{name}_layer{i}") for i in range(count)]


class TransformerDecoderCache(BlockDecoder):
    """Per layer, a key/value cache `[batch, 2, length, heads, head_dim]` that each step extends at
    `index`; attention then reads the cache instead of recomputing earlier positions."""

    bounded = True

    def __init__(self, layers: list[Any], norm: Any, heads: int, head_dim: int):
        self.layers, self.norm, self.heads, self.head_dim = layers, norm, heads, head_dim

    def initial_state(self, batch: int, length: int) -> tuple:
        from keras import ops

        return tuple(
            ops.zeros((batch, 2, length, self.heads, self.head_dim), layer.compute_dtype) for layer in self.layers
        )

    def step(self, x: Any, state: tuple, index: Any, mask: Any = None) -> tuple[Any, tuple]:
        new_state = []
        from keras import ops

        for layer, cache in zip(self.layers, state, strict=True):
            # Drop the padding mask Keras attached to x: keras_hub would merge its [batch, t] shape
            # with the [batch, t, cache length] causal mask. Generated tokens are never padding.
            x = ops.copy(x)
            x, cache = layer(x, self_attention_cache=cache, self_attention_cache_update_index=index, training=False)
            new_state.append(cache)
        if self.norm is not None:
            x = self.norm(x)
        return x, tuple(new_state)
