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


# --- length penalty ---------------------------------------------------------------------------
# Token 1 starts, 2 ends; 3 and 4 are words. P(next | last token), as log-probability logits:
#   after 1: end 0.4, a(3) 0.6;  after 3: end 0.45, b(4) 0.55;  after 4: end 1 (nearly);
#   after 2 (past the end): uniform, which keras_hub's search keeps paying for.
START, END, A, B = 1, 2, 3, 4
_EPS = 1e-6
_TABLE = np.log(np.array([
    [0.2] * 5,
    [_EPS, _EPS, 0.4, 0.6, _EPS],
    [0.2] * 5,
    [_EPS, _EPS, 0.45, _EPS, 0.55],
    [_EPS, _EPS, 1.0, _EPS, _EPS],
], "float32"))


def _from_last(prompt, cache, index):
    return ops.take(ops.convert_to_tensor(_TABLE), ops.take(prompt, index - 1, axis=1), axis=0), None, cache


def _search(length_penalty):
    prompt = ops.convert_to_tensor(np.array([[START, 0, 0, 0, 0, 0]], "int32"))
    mask = ops.convert_to_tensor(np.array([[True] + [False] * 5]))
    out = BeamSearch(num_beams=2, length_penalty=length_penalty)(
        _from_last, prompt, index=1, mask=mask, stop_token_ids=(END,))
    return ops.convert_to_numpy(out)[0].tolist()


def test_length_penalty_zero_ranks_raw_sums_with_an_ended_beam_held():
    # Sums: [end] log .4 = -0.916; [a end] log .6 + log .45 = -1.310; [a b end] log .6 + log .55 = -1.109.
    # Held at -0.916, [end] wins; the rest of its row is padding.
    assert _search(0.0) == [START, END, 0, 0, 0, 0]


def test_length_penalty_one_ranks_by_mean_log_probability_per_token():
    # Per token (the end token counted): [end] -0.916 / 1; [a end] -1.310 / 2 = -0.655;
    # [a b end] -1.109 / 3 = -0.370: the longest wins.
    assert _search(1.0)[:4] == [START, A, B, END]


def test_without_a_length_penalty_an_ended_beam_keeps_paying_as_keras_hub_does():
    # [end] pays log .2 = -1.609 for each step after its end: -2.525 after one more step, below
    # [a b] (-1.109), so it drops out and [a b end] wins, as with keras_hub's sampler.
    expected = keras_hub.samplers.BeamSampler(num_beams=2)(
        _from_last, ops.convert_to_tensor(np.array([[START, 0, 0, 0, 0, 0]], "int32")), index=1,
        mask=ops.convert_to_tensor(np.array([[True] + [False] * 5])), stop_token_ids=(END,))
    assert _search(None) == ops.convert_to_numpy(expected)[0].tolist()
    assert _search(None)[:4] == [START, A, B, END]
