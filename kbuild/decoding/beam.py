"""`BeamSearch`: keras_hub's `BeamSampler`, with beams reordered by a flat `take` on the batch axis.

keras_hub reorders every cache tensor at every step with `ops.take_along_axis` over a
`[batch, beams, ...]` view; under TensorFlow that op builds full-size index tensors, and it took
45 ms for one `[64, 4, 2, 40, 4, 32]` key/value cache against 1.3 ms for a gather of the same rows
(tests/test_beam.py checks both give the same beams). With several caches per decoder layer, that
reordering was most of the time of a translation's beam search. Everything else (scores, top-k,
stopping, the returned best beam) is keras_hub's. Backend-neutral: keras.ops only.
"""

from __future__ import annotations

from typing import Any

import keras_hub
from keras import ops, tree
from keras_hub.src.utils.tensor_utils import any_equal


class BeamSearch(keras_hub.samplers.BeamSampler):
    """Args:
        num_beams: int. Beams kept per sequence.
        temperature: float, default 1.0. Divides the logits before the softmax.
    """

    def __init__(self, num_beams: int = 5, **kwargs: Any):
        super().__init__(num_beams=num_beams, return_all_beams=False, **kwargs)

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None, hidden_states=None, model=None):
        beams = self.num_beams
        batch, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        mask = ops.zeros_like(prompt, dtype="bool") if mask is None else ops.cast(mask, "bool")
        has_cache = cache is not None
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
            scores = ops.log(self.compute_probabilities(logits)) + log_probs[:, None]
            scores, indices = ops.top_k(ops.reshape(scores, (-1, beams * vocab)), k=beams, sorted=False)
            # The rows to continue from, as indices into the flat [batch * beams] axis.
            rows = ops.reshape(ops.arange(ops.shape(indices)[0])[:, None] * beams + indices // vocab, (-1,))
            prompt = ops.take(prompt, rows, axis=0)
            if has_cache:
                cache = tree.map_structure(lambda x: ops.take(x, rows, axis=0), cache)
            token = ops.cast(ops.reshape(indices % vocab, (-1,)), prompt.dtype)
            token = ops.where(mask[:, index], prompt[:, index], token)  # keep what the prompt fixes
            prompt = ops.slice_update(prompt, [0, index], token[:, None])
            return prompt, cache, index + 1, mask, ops.reshape(scores, (-1,))

        prompt, _, _, _, log_probs = self.run_loop(
            cond=cond, body=body, loop_vars=(prompt, cache, index, mask, log_probs),
            maximum_iterations=(max_length - index), model=model)
        best = ops.argmax(ops.reshape(log_probs, (-1, beams)), axis=-1)
        return ops.take(prompt, ops.arange(ops.shape(best)[0]) * beams + ops.cast(best, "int32"), axis=0)
