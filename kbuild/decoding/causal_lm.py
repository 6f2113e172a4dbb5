"""Greedy (or any keras_hub sampler's) decoding of a keras_hub `CausalLM` inside one TensorFlow
graph: raw prompts in, continuations out, with the tokenizer, the key/value cache and the
detokeniser in the graph, so a SavedModel generates with tensorflow and tensorflow_text alone.

keras_hub's own `generate` runs its loop from Python (and its preprocessor outside the graph);
this drives the same pieces, `_build_cache` and `call_with_cache`, through the sampler's
`while_loop` (keras_hub's `generate_step`, written for a graph function). Prompts of different
lengths share one buffer, left-aligned, and each gets `max_new_tokens` at most (the loop runs until
every row has stopped or the longest prompt has its `max_new_tokens`, so batch prompts of similar
lengths); the cache is `context` tokens at most: a prompt longer than `context - max_new_tokens`
keeps its last tokens.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from kbuild.pretrained.causal_lm import causal_lm_of


def continue_in_graph(model: Any, tokenizer: Any, sampler: Any, prompts: tf.Tensor, max_new_tokens: tf.Tensor,
                      stop_ids: tuple[int, ...], context: int) -> tf.Tensor:
    """The continuation of each prompt (strings `[batch]`), up to `max_new_tokens` tokens, cut
    before the first of `stop_ids` it generates (TF ops only)."""
    model = causal_lm_of(model)
    ids = tf.cast(tokenizer.token_ids(prompts), tf.int32)
    new = tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 1, context - 1)
    positions = tf.ragged.range(ids.row_lengths())
    cut = ids.row_lengths() - tf.cast(context - new, tf.int64)
    ids = tf.ragged.boolean_mask(ids, positions >= tf.expand_dims(cut, 1))
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    total = tf.reduce_max(lengths) + new
    rows = ids.nrows(out_type=tf.int32)
    buffer = ids.to_tensor(default_value=tokenizer.pad_id, shape=tf.stack([rows, total]))
    mask = tf.sequence_mask(lengths, total)
    hidden, cache = model._build_cache(buffer)

    def next_token(prompt, cache, index):  # keras_hub's generate_step: the cache holds positions < index
        previous = index - 1
        logits, hidden, cache = model.call_with_cache(tf.slice(prompt, [0, previous], [-1, 1]), cache, previous)
        return tf.squeeze(logits, 1), tf.squeeze(hidden, 1), cache

    out = sampler(next=next_token, prompt=buffer, cache=cache, index=tf.maximum(tf.reduce_min(lengths), 1),
                  mask=mask, stop_token_ids=stop_ids or None, hidden_states=hidden, model=model)
    # A row's reply is at most `new` tokens: the shared buffer gives a shorter prompt more room than
    # that (it ends `new` tokens after the longest prompt), and its tokens past the cap are dropped.
    column = tf.range(total)[tf.newaxis, :]
    generated = (column >= lengths[:, tf.newaxis]) & (column < (lengths + new)[:, tf.newaxis])
    stops = tf.reduce_any(out[..., tf.newaxis] == tf.constant(stop_ids or (-1,), tf.int32), -1) & generated
    kept = generated & (tf.cumsum(tf.cast(stops, tf.int32), axis=1) == 0)
    return tokenizer.detokenize(tf.ragged.boolean_mask(out, kept))


def greedy_pick(logits: Any) -> int:
    """The most likely next token (`continue_in_graph`'s greedy sampler)."""
    import numpy as np

    return int(np.argmax(logits))


def sampling_pick(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None) -> Callable[[Any], int]:
    """A next-token draw from the softmax of logits / `temperature`, over the `top_k` most likely
    tokens and then the smallest set of them holding `top_p` of the mass; seeded, so a seed repeats."""
    import numpy as np

    generator = np.random.default_rng(seed)

    def pick(logits: Any) -> int:
        scaled = np.asarray(logits, np.float64) / temperature
        order = np.argsort(-scaled)[: top_k or None]
        probabilities = np.exp(scaled[order] - scaled[order[0]])
        probabilities /= probabilities.sum()
        if top_p is not None:
            keep = int(np.searchsorted(np.cumsum(probabilities), top_p)) + 1
            order, probabilities = order[:keep], probabilities[:keep] / probabilities[:keep].sum()
        return int(order[generator.choice(len(order), p=probabilities)])

    return pick


def pick_for(sampler: str, temperature: float = 1.0, top_k: int = 10, top_p: float = 0.9,
             seed: int | None = None) -> Callable[[Any], int]:
    """The next-token pick a sampler name asks for: `greedy`, or a draw over the `top_k` most
    likely tokens (`top_k`) or the `top_p` mass (`top_p`)."""
    if sampler == "greedy":
        return greedy_pick
    return sampling_pick(temperature, top_k if sampler == "top_k" else None, top_p if sampler == "top_p" else None, seed)


def decoded_pieces(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, stop_ids: tuple[int, ...],
                   context: int, pick: Callable[[Any], int] = greedy_pick) -> Iterator[str]:
    """The continuation of one prompt as text pieces while it is decoded (`kbuild chat` on a run
    shows each as it comes). Greedy by default, the same tokens as `continue_in_graph`: one prefill
    of the prompt and its reply room, then one compiled cache step per token, here driven from
    Python so each token can leave before the next, and `pick` may sample (`sampling_pick`). A
    piece that ends inside a UTF-8 character waits for the rest."""
    model = causal_lm_of(model)
    new = max(1, min(int(max_new_tokens), context - 1))
    ids = tokenizer.token_ids(tf.constant([prompt])).to_list()[0][-(context - new):]
    if not ids:
        return
    _, cache = model._build_cache(tf.constant([ids + [tokenizer.pad_id] * new], tf.int32))
    step = _cache_step(model)

    def text(tokens: list[int]) -> str:
        return tokenizer.detokenize(tf.ragged.constant([tokens], tf.int32)).numpy()[0].decode("utf-8", "replace")

    token, position, tokens, shown, so_far = ids[-1], len(ids) - 1, [], "", ""
    for _ in range(new):
        logits, cache = step(tf.constant([[token]], tf.int32), cache, tf.constant(position, tf.int32))
        token = pick(logits.numpy()[0, -1])
        if token in stop_ids:
            break
        tokens.append(token)
        position += 1
        so_far = text(tokens)
        if not so_far.endswith("\ufffd") and len(so_far) > len(shown):
            yield so_far[len(shown):]
            shown = so_far
    if len(so_far) > len(shown):  # the last piece, held back for a character it never completed
        yield so_far[len(shown):]


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache_step(model: Any) -> Any:
    """One decoding step with the cache, one function per model: kept across prompts, so its traces
    are too (`reduce_retracing` then traces once for any cache length). A function per call traced
    anew for every prompt: `kbuild report`'s few continuations took 100 s, and each chat turn paid."""
    if model not in _STEPS:
        owner = weakref.ref(model)  # the function must not keep its dictionary key alive

        @tf.function(reduce_retracing=True)
        def step(token, cache, position):
            logits, _, cache = owner().call_with_cache(token, cache, position)
            return logits, cache

        _STEPS[model] = step
    return _STEPS[model]


def perplexity(model: Any, token_ids: Any) -> float:
    """exp of the mean next-token cross-entropy of a keras_hub `CausalLM` over `token_ids` (`[batch,
    length]`, every token real): how well it predicts a fixed text (e.g. float against quantised)."""
    import keras
    import numpy as np

    ids = np.asarray(token_ids, np.int32)
    logits = model({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}, training=False)
    losses = keras.losses.sparse_categorical_crossentropy(ids[:, 1:], logits[:, :-1], from_logits=True)
    return float(np.exp(np.mean(keras.ops.convert_to_numpy(losses))))
