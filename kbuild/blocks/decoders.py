"""`model.decoder`: the target side of an encoder-decoder, one config class per `type`.

- `transformer`: keras_hub `TransformerDecoder` layers, masked self-attention then cross-attention
  over the encoder's outputs (Vaswani et al. 2017).
- `lstm` / `gru`: a recurrent decoder whose state starts from the encoder's (masked mean) summary,
  with global attention over the encoder outputs after the recurrent layers (Luong et al. 2015:
  `luong` scores with a bilinear product, `bahdanau` with an additive MLP, Bahdanau et al. 2015),
  then an attentional layer tanh(W[context; h]).

Configs validate without Keras; `build` imports it. Every layer is named, so decoding can find the
trained layers again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kbuild.config import StrictModel


class _DecoderBase(StrictModel):
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    search: Literal["greedy", "beam"] = "greedy"
    """How translations are decoded (evaluate, predict, export): `greedy` or `beam`."""
    beams: int = Field(default=4, ge=1, le=64)
    """Beam width of `search: beam`."""
    length_penalty: float | None = Field(default=None, ge=-5.0, le=5.0)
    """`search: beam`: rank beams by log-probability / length^α, an ended beam keeping its score
    (Hugging Face's `length_penalty`; 1.0 the mean per token, above 1 favours longer outputs,
    below shorter). Unset: keras_hub's beam search, unchanged (ended beams keep being extended)."""
    min_length: int = Field(default=0, ge=0)
    """Fewest tokens an output holds: the end token is impossible before (greedy and beam)."""
    max_length: int | None = Field(default=None, ge=1)
    """Most tokens an output holds, below `preprocess.max_length` (which also bounds the
    source): a summary of 16 tokens from a 256-token email decodes 16 steps, not 255. Unset:
    `preprocess.max_length` - 1."""
    no_repeat_ngram_size: int = Field(default=0, ge=0)
    """No n-gram of this size occurs twice in an output (3: trigram blocking); 0: off."""
    tie_embeddings: bool = False
    """The output layer is the target token embedding read in reverse (Press and Wolf 2017, and
    BERT2BERT's decoders): one table for both, no separate [width, vocab] layer to learn. With a
    checkpoint's shared vocabulary it starts as the checkpoint's embeddings. The decoder's output
    width must be the target embedding's (a recurrent decoder's `units`)."""

    def check(self, dim: int):
        return iter(())

    def decode_length(self, max_length: int) -> int:
        """The decoding buffer's length under `preprocess.max_length`: the start token, then the
        output's tokens (an output that fills it has no end token)."""
        return max_length if self.max_length is None else min(self.max_length + 1, max_length)


class TransformerDecoderSpec(_DecoderBase):
    """Example: `{type: transformer, layers: 3, heads: 4, ff_dim: 512, dropout: 0.1}`."""

    type: Literal["transformer"] = "transformer"
    layers: int = Field(default=2, ge=1, le=64)
    heads: int = Field(default=4, ge=1)
    ff_dim: int = Field(default=512, ge=1)
    activation: Literal["relu", "gelu"] = "relu"
    norm: Literal["post", "pre"] = "post"
    from_backbone: bool = False
    """With `model.backbone`: start the decoder from the checkpoint too (Rothe, Narayan and Severyn
    2020's BERT2BERT). Each decoder layer's self-attention, feed-forward and layer norms start as
    the checkpoint's layer of the same index, and its positions and embedding normalisation as
    the checkpoint's embeddings; only the cross-attention and the output layer start fresh. The
    layers must be shaped as the checkpoint's (`heads`, `ff_dim`, `activation`, `norm: post`,
    at most its depth), checked when the model is built."""

    def check(self, dim: int):
        if dim % self.heads:
            yield ("heads",), f"Expected `heads` to divide the embedding size ({dim}); received heads={self.heads}."

    def build(self, x: Any, target_mask: Any, encoded: Any, source_mask: Any) -> Any:
        """Decoder features [batch, target, dim] for embedded targets `x` (which carry the
        target's padding mask; `target_mask` is the same, for decoders that need it explicitly)."""
        from kbuild.blocks.transformer_decoder import decoder_stack

        return decoder_stack(x, self, "decoder", encoded=encoded, encoder_mask=source_mask)


class RecurrentDecoderSpec(_DecoderBase):
    """Example: `{type: lstm, units: 256, layers: 1, attention: luong}`."""

    type: Literal["lstm", "gru"] = "lstm"
    units: int = Field(default=256, ge=1)
    layers: int = Field(default=1, ge=1, le=8)
    attention: Literal["luong", "bahdanau"] = "luong"

    def build(self, x: Any, target_mask: Any, encoded: Any, source_mask: Any) -> Any:
        import keras

        from kbuild.layers import MaskedPooling

        # The encoder's summary starts every layer's state: the decoder knows the sentence
        # before the first target word, as in Sutskever et al. / Luong et al.
        summary = MaskedPooling("mean", name="decoder_summary")(encoded, mask=source_mask)
        rnn = keras.layers.LSTM if self.type == "lstm" else keras.layers.GRU
        for i in range(self.layers):
            h = keras.layers.Dense(self.units, activation="tanh", name=f"decoder_init_h{i}")(summary)
            state = [h]
            if self.type == "lstm":
                state.append(keras.layers.Dense(self.units, activation="tanh", name=f"decoder_init_c{i}")(summary))
            x = rnn(self.units, return_sequences=True, dropout=self.dropout, name=f"decoder_rnn{i}")(
                x, initial_state=state, mask=target_mask)
        if self.attention == "luong":
            # "general" score h_t^T W h_s: project the encoder outputs, then a dot product.
            keys = keras.layers.Dense(self.units, use_bias=False, name="decoder_attention_keys")(encoded)
            context = keras.layers.Attention(name="decoder_attention")([x, encoded, keys], mask=[target_mask, source_mask])
        else:
            query = keras.layers.Dense(self.units, use_bias=False, name="decoder_attention_query")(x)
            keys = keras.layers.Dense(self.units, use_bias=False, name="decoder_attention_keys")(encoded)
            context = keras.layers.AdditiveAttention(name="decoder_attention")([query, encoded, keys],
                                                                              mask=[target_mask, source_mask])
        x = keras.layers.Concatenate(name="decoder_concat")([context, x])
        x = keras.layers.Dense(self.units, activation="tanh", name="decoder_attentional")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="decoder_dropout")(x)
        return x


DecoderSpec = Annotated[TransformerDecoderSpec | RecurrentDecoderSpec, Field(discriminator="type")]
