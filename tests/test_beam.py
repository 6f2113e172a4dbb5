"""kbuild's BeamSearch finds exactly keras_hub's beams, cache and prompt masks included."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")

from keras import ops  # noqa: E402

from kbuild.decoding.beam import BeamSearch  # noqa: E402

VOCAB, LENGTH = 11, 9


def _next(table):
    """A deterministic toy model: logits from the last token and a cache that counts steps and
    carries the token history per row (so reordering it wrongly changes later logits)."""
    def next_token(prompt, cache, index):
        steps, memory = cache
        last = ops.take(prompt, index - 1, axis=1)
        logits = ops.take(table, last, axis=0) + 0.1 * ops.cast(memory, "float32")
        memory = (memory * 3 + last[:, None]) % VOCAB
        return logits, None, (steps + 1, memory)

    return next_token


@pytest.mark.parametrize("beams", [1, 3, 5])
def test_beam_search_equals_keras_hubs_beam_sampler(beams):
    rng = np.random.default_rng(beams)
    table = ops.convert_to_tensor(rng.normal(size=(VOCAB, VOCAB)).astype("float32") * 3)
    prompt = ops.convert_to_tensor(rng.integers(1, VOCAB, size=(4, LENGTH)).astype("int32"))
    mask = ops.convert_to_tensor(np.arange(LENGTH)[None, :] < np.array([[1], [2], [1], [3]]))
    cache = (ops.zeros((4, 1), "int32"), ops.convert_to_tensor(rng.integers(0, VOCAB, size=(4, VOCAB)).astype("int32")))
    kwargs = {"cache": cache, "index": 1, "mask": mask, "stop_token_ids": (2,)}
    expected = keras_hub.samplers.BeamSampler(num_beams=beams)(_next(table), prompt, **kwargs)
    found = BeamSearch(num_beams=beams)(_next(table), prompt, **kwargs)
    assert ops.convert_to_numpy(found).tolist() == ops.convert_to_numpy(expected).tolist()
