"""`StepConstraints`: what a decoded target may not do at a step, added to the step's logits.

- `[PAD]` and `[UNK]` are never worth emitting;
- `min_length`: the end token (`[CLS]`) is impossible until that many tokens came before it;
- `no_repeat_ngram_size` n: a token that would complete an n-gram the output already holds is
  impossible (Paulus et al. 2018's trigram blocking with n = 3), n-grams over the output's own
  tokens, the leading start token excluded.

The same for greedy and beam search (beam search calls it with every beam's row), and built from
keras.ops, so a traced decoder (evaluation, `kbuild predict`, the SavedModel) keeps it.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from kbuild.names import CLS_ID, PAD_ID, UNK_ID

BANNED = -1e9
FIRST = 1
"""Position of the output's first token: position 0 holds the start token."""


class StepConstraints:
    """Args:
        vocab: the target vocabulary size (the logits' last axis).
        min_length: int, default 0. Tokens the output holds at least, the end token excluded.
        no_repeat_ngram_size: int, default 0 (off). No n-gram of this size occurs twice.
    """

    def __init__(self, vocab: int, min_length: int = 0, no_repeat_ngram_size: int = 0):
        self.vocab, self.min_length, self.ngram = vocab, min_length, no_repeat_ngram_size
        self.special = banned_logits(vocab)
        self.end = ops.convert_to_tensor([BANNED if i == CLS_ID else 0.0 for i in range(vocab)], "float32")

    def __call__(self, logits: Any, prompt: Any, index: Any) -> Any:
        """`logits` [rows, vocab] of the token at position `index` of `prompt` [rows, length]
        (positions before it filled), with the forbidden tokens at -1e9."""
        logits = logits + self.special
        if self.min_length:
            # Before the step, index - FIRST tokens are out.
            logits = logits + ops.where(index - FIRST < self.min_length, self.end, 0.0)
        if self.ngram:
            logits = logits + ops.where(repeated_ngram_tokens(prompt, index, self.ngram, self.vocab), BANNED, 0.0)
        return logits


def banned_logits(vocab: int) -> Any:
    """Added to each step's logits: padding and [UNK] are never worth emitting."""
    return ops.convert_to_tensor([BANNED if i in (PAD_ID, UNK_ID) else 0.0 for i in range(vocab)], "float32")


def repeated_ngram_tokens(prompt: Any, index: Any, n: int, vocab: int) -> Any:
    """bool [rows, vocab]: the tokens that, at position `index`, would repeat an n-gram of the
    output so far (positions FIRST .. index - 1)."""
    rows, length = ops.shape(prompt)[0], ops.shape(prompt)[1]
    starts = ops.arange(FIRST, length - n + 1)  # the earlier n-grams' first positions
    # The n-gram at `start` lies before `index`, and its first n - 1 tokens are the last n - 1 out.
    earlier = (starts + n - 1 < index) & (index - (n - 1) >= FIRST)
    match = ops.broadcast_to(earlier[None, :], (rows, ops.shape(starts)[0]))
    for k in range(n - 1):
        tail = ops.take(prompt, ops.maximum(index - (n - 1) + k, 0), axis=1)
        match = match & ops.equal(ops.take(prompt, starts + k, axis=1), tail[:, None])
    following = ops.take(prompt, starts + n - 1, axis=1)  # the token each earlier n-gram ends with
    row = ops.broadcast_to(ops.arange(rows)[:, None], ops.shape(following))
    indices = ops.reshape(ops.stack([row, ops.cast(following, row.dtype)], axis=-1), (-1, 2))
    hits = ops.scatter(indices, ops.reshape(ops.cast(match, "float32"), (-1,)), (rows, vocab))
    return hits > 0
