"""`BeamSearch`: keras_hub's `BeamSampler`, with beams reordered by a flat `take` on the batch axis,
and an optional length penalty.

keras_hub reorders every cache tensor at every step with `ops.take_along_axis` over a
`[batch, beams, ...]` view; under TensorFlow that op builds full-size index tensors, and it took
45 ms for one `[64, 4, 2, 40, 4, 32]` key/value cache against 1.3 ms for a gather of the same rows
(tests/test_beam.py checks both give the same beams). With several caches per decoder layer, that
reordering was most of the time of a translation's beam search. Without a length penalty
everything else (scores, top-k, stopping, the returned best beam) is keras_hub's: a beam that has
ended keeps being extended, and its score keeps falling, until every beam has ended.

With `length_penalty` α, a beam that ends is held: each later step extends it with one padding
token at no cost, so its score stays that of its own tokens, and beams are ranked by score /
length^α (Hugging Face's convention, length = the tokens produced, the end token included):
α = 0 ranks raw sums of log-probabilities, 1 their mean per token, larger α favours longer outputs
and negative α shorter ones. Live beams all have one length at a step, so α only changes how
they rank against held ones, and which beam wins at the end. Backend-neutral: keras.ops only.
"""

from __future__ import annotations

from typing import Any

import keras_hub
from keras import ops, tree
from keras_hub.src.utils.tensor_utils import any_equal

from kbuild.names import PAD_ID

HELD = -1e9
"""Log-probability of every token but padding after a held beam's end."""


class BeamSearch(keras_hub.samplers.BeamSampler):
    """Args:
        num_beams: int. Beams kept per sequence.
        length_penalty: float or None, default None. α of the ranking score / length^α, with
            ended beams held (see the module docstring); None: keras_hub's beam search.
        temperature: float, default 1.0. Divides the logits before the softmax.
    """

    def __init__(self, num_beams: int = 5, length_penalty: float | None = None, **kwargs: Any):
        super().__init__(num_beams=num_beams, return_all_beams=False, **kwargs)
        self.length_penalty = length_penalty

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None, hidden_states=None, model=None):
        beams = self.num_beams
        batch, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        mask = ops.zeros_like(prompt, dtype="bool") if mask is None else ops.cast(mask, "bool")
        has_cache = cache is not None
        penalised = self.length_penalty is not None and stop_token_ids is not None
        # Row b * beams + j is beam j of sequence b, as keras_hub lays them out.
        prompt, mask = ops.repeat(prompt, beams, axis=0), ops.repeat(mask, beams, axis=0)
        cache = tree.map_structure(lambda x: ops.repeat(x, beams, axis=0), cache if has_cache else ())
        # Only each sequence's first beam is live at the start (the others would duplicate it).
        log_probs = ops.reshape(ops.broadcast_to(ops.array([[0.0] + [-1e9] * (beams - 1)], "float32"), (batch, beams)), (-1,))

        def cond(prompt, cache, index, mask, log_probs):
            if stop_token_ids is None:
                return ops.convert_to_tensor(True, dtype="bool")
            ended = ops.any(any_equal(prompt, stop_token_ids, ~mask), axis=-1)
            return ops.logical_not(ops.all(ended))

        def body(prompt, cache, index, mask, log_probs):
            logits, _, cache = next(prompt, cache, index)
            vocab = ops.shape(logits)[-1]
            step = ops.log(self.compute_probabilities(logits))
            if penalised:
                ended, length = produced(prompt, mask, index, stop_token_ids)
                step = ops.where(ended[:, None], held_step(vocab), step)
                # A held beam keeps its length; a live one grows by the token it takes now.
                length = ops.cast(length, "float32") + ops.cast(~ended, "float32")
            scores = step + log_probs[:, None]
            ranked = scores / length[:, None] ** self.length_penalty if penalised else scores
            ranks, indices = ops.top_k(ops.reshape(ranked, (-1, beams * vocab)), k=beams, sorted=False)
            scores = ranks if not penalised else ops.take_along_axis(ops.reshape(scores, (-1, beams * vocab)), indices, axis=1)
            # The rows to continue from, as indices into the flat [batch * beams] axis.
            rows = ops.reshape(ops.arange(ops.shape(indices)[0])[:, None] * beams + indices // vocab, (-1,))
            prompt = ops.take(prompt, rows, axis=0)
            if has_cache:
                cache = tree.map_structure(lambda x: ops.take(x, rows, axis=0), cache)
            token = ops.cast(ops.reshape(indices % vocab, (-1,)), prompt.dtype)
            token = ops.where(mask[:, index], prompt[:, index], token)  # keep what the prompt fixes
            prompt = ops.slice_update(prompt, [0, index], token[:, None])
            return prompt, cache, index + 1, mask, ops.reshape(scores, (-1,))

        prompt, _, index, _, log_probs = self.run_loop(
            cond=cond, body=body, loop_vars=(prompt, cache, index, mask, log_probs),
            maximum_iterations=(max_length - index), model=model)
        final = log_probs
        if penalised:
            _, length = produced(prompt, mask, index, stop_token_ids)
            final = log_probs / ops.cast(ops.maximum(length, 1), "float32") ** self.length_penalty
        best = ops.argmax(ops.reshape(final, (-1, beams)), axis=-1)
        return ops.take(prompt, ops.arange(ops.shape(best)[0]) * beams + ops.cast(best, "int32"), axis=0)

    def get_config(self) -> dict:
        return {**super().get_config(), "length_penalty": self.length_penalty}


def produced(prompt: Any, mask: Any, index: Any, stop_token_ids: Any) -> tuple[Any, Any]:
    """(whether each row has ended, the tokens it produced) in positions before `index`: those
    the prompt does not fix, up to and including the first end token."""
    filled = (ops.arange(ops.shape(prompt)[1])[None, :] < index) & ~mask
    stops = ops.cast(any_equal(prompt, stop_token_ids, filled), "int32")
    after_end = (ops.cumsum(stops, axis=1) - stops) > 0
    return ops.any(stops > 0, axis=1), ops.sum(ops.cast(filled & ~after_end, "int32"), axis=1)


def held_step(vocab: Any) -> Any:
    """[1, vocab] step log-probabilities of a held beam: padding free, everything else impossible."""
    return ops.where(ops.arange(vocab)[None, :] == PAD_ID, 0.0, HELD)
