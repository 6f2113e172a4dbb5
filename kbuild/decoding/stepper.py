"""A trained language model run incrementally: each call embeds a few new tokens at their
positions and passes them through every block's `BlockDecoder`, which carries the key/value cache
or recurrent state. Backend-neutral (keras.ops); `decode` drives a keras_hub sampler with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras import ops

from kbuild.data.tokenizers.base import SPECIAL_TOKENS
from kbuild.model import block_contexts
from kbuild.names import LOGITS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec


class LanguageModelStepper:
    """Args:
        model: the trained language model (embedding -> blocks -> `logits`).
        spec: its spec (names the blocks whose layers are looked up in `model`).
    """

    def __init__(self, model: keras.Model, spec: Spec):
        self.model = model
        self.embedding = model.get_layer("embedding")
        self.decoders = [block.decoder(model, ctx) for block, ctx in block_contexts(spec)]
        self.head = model.get_layer(LOGITS)
        vocab = self.head.units
        # Never sample [PAD], [UNK] or [CLS]: they are bookkeeping, not text.
        self.banned = ops.convert_to_tensor(
            [-1e9 if i < len(SPECIAL_TOKENS) else 0.0 for i in range(vocab)], "float32"
        )
        bounded = spec.model.embedding.position != "none" or any(d.bounded for d in self.decoders)
        self.context: int | None = spec.preprocess.max_length if bounded else None
        """Longest window the model can attend to; None when state carries any length (an RNN
        without absolute positions)."""

    def initial_cache(self, batch: int, length: int) -> tuple:
        return tuple(decoder.initial_state(batch, length) for decoder in self.decoders)

    def step(self, ids: Any, cache: tuple, index: Any, mask: Any = None) -> tuple[Any, tuple]:
        """(logits [batch, t, vocab], cache) for ids [batch, t] at positions index..index+t-1;
        where `mask` [batch, t] is False a recurrent state skips the token (see `decode`)."""
        x = self.embedding(ids, start_index=index)
        states = []
        for decoder, state in zip(self.decoders, cache, strict=True):
            x, state = decoder.step(x, state, index, mask)
            states.append(state)
        return self.head(x), tuple(states)

    def decode(self, sampler: Any, ids: Any, mask: Any, start: Any, stop_ids: tuple[int, ...] | None,
               use_cache: bool = True) -> Any:
        """Fill `ids` [batch, length] from position `start` on, where `mask` is False.

        Positions before `start` hold every sequence's prompt (longer prompts continue where
        `mask` is True and are kept). With the cache, the prompt is read once up front and each
        step then runs one token; without it, every step re-runs the whole window.
        """
        batch, length = ops.shape(ids)[0], ops.shape(ids)[1]
        if not use_cache:
            def full(prompt, cache, index):
                logits = self.model(prompt, training=False)
                return ops.take(logits, index - 1, axis=1) + self.banned, None, cache

            return sampler(full, ids, cache=None, index=start, mask=mask, stop_token_ids=stop_ids)

        cache = self.initial_cache(batch, length)
        # Prefill: run the whole buffer once, so every shape stays static (XLA compiles it). The
        # recurrent state takes only tokens 0..start-2 (masked steps carry the state); the
        # attention cache gets later positions too, but each is overwritten before it is read.
        # The first sampler step then runs token start-1.
        prefill = ops.arange(length)[None, :] < start - 1
        _, cache = self.step(ids, cache, 0, ops.broadcast_to(prefill, (batch, length)))

        def next_token(prompt, cache, index):
            # The prompt's batch, not `batch`: beam search runs batch * beams rows.
            token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
            logits, cache = self.step(token, cache, index - 1)
            return logits[:, 0, :] + self.banned, None, cache

        return sampler(next_token, ids, cache=cache, index=start, mask=mask, stop_token_ids=stop_ids)
