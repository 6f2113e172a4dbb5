"""The CRF's forward algorithm and Viterbi decoding against brute-force enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import ops  # noqa: E402

from kbuild.layers import TokenAccuracy  # noqa: E402
from kbuild.layers.crf import (  # noqa: E402
    CRF,
    CRFLoss,
    TagDecoder,
    crf_log_likelihood,
    unpack,
    viterbi_decode,
)


def _random_problem(seed, batch=3, time=4, tags=3):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, time, tags)).astype("float32"),
        rng.normal(size=(tags, tags)).astype("float32"),
        rng.normal(size=(tags,)).astype("float32"),
        rng.normal(size=(tags,)).astype("float32"),
    )


def _path_score(emissions, transitions, start, end, path):
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path, path[1:], strict=False))


def _brute_force(emissions, transitions, start, end, length):
    """Every path of `length` tags: (log partition, best path, best score)."""
    tags = emissions.shape[-1]
    scored = [(_path_score(emissions, transitions, start, end, p), p) for p in itertools.product(range(tags), repeat=length)]
    log_partition = np.logaddexp.reduce([s for s, _ in scored])
    best_score, best_path = max(scored)
    return log_partition, list(best_path), best_score


@pytest.mark.parametrize("lengths", [[4, 4, 4], [4, 2, 1]])
def test_log_likelihood_equals_brute_force_enumeration(lengths):
    emissions, transitions, start, end = _random_problem(0)
    mask = np.array([[t < n for t in range(4)] for n in lengths])
    gold = np.array([[0, 2, 1, 1], [1, 1, 0, 2], [2, 0, 0, 0]], np.int32)
    got = ops.convert_to_numpy(crf_log_likelihood(emissions, gold, mask, transitions, start, end))
    for row, n in enumerate(lengths):
        log_partition, _, _ = _brute_force(emissions[row], transitions, start, end, n)
        expected = _path_score(emissions[row], transitions, start, end, list(gold[row, :n])) - log_partition
        assert got[row] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_viterbi_finds_the_brute_force_best_path_under_padding(seed):
    emissions, transitions, start, end = _random_problem(seed, batch=3, time=5, tags=3)
    lengths = [5, 3, 1]
    mask = np.array([[t < n for t in range(5)] for n in lengths])
    paths, scores = viterbi_decode(emissions, mask, transitions, start, end)
    paths, scores = ops.convert_to_numpy(paths), ops.convert_to_numpy(scores)
    for row, n in enumerate(lengths):
        _, best_path, best_score = _brute_force(emissions[row], transitions, start, end, n)
        assert list(paths[row, :n]) == best_path
        assert scores[row] == pytest.approx(best_score, abs=1e-4)


def test_a_row_without_tokens_has_zero_log_likelihood():
    emissions, transitions, start, end = _random_problem(4, batch=2, time=3)
    mask = np.array([[True, True, False], [False, False, False]])
    got = ops.convert_to_numpy(crf_log_likelihood(emissions, np.zeros((2, 3), np.int32), mask, transitions, start, end))
    assert got[1] == 0.0 and got[0] < 0.0


def test_crf_layer_output_unpacks_to_its_emissions_and_weights():
    crf = CRF(3)
    emissions = np.random.default_rng(5).normal(size=(2, 4, 3)).astype("float32")
    packed = crf(emissions)
    assert tuple(packed.shape) == (2, 4 + 3 + 2, 3)
    got_emissions, transitions, start, end = unpack(packed, 3)
    np.testing.assert_allclose(ops.convert_to_numpy(got_emissions), emissions)
    np.testing.assert_allclose(ops.convert_to_numpy(transitions), ops.convert_to_numpy(crf.transitions))
    assert tuple(start.shape) == (3,) and tuple(end.shape) == (3,)


def test_crf_loss_ignores_padding_labels_and_learns_transitions():
    # Tag 1 always follows tag 0 and emissions carry no signal: only transitions can learn it.
    inputs = keras.Input((4, 2))
    model = keras.Model(inputs, CRF(2)(keras.layers.Dense(2)(inputs)))
    model.compile(keras.optimizers.Adam(0.1), CRFLoss(), metrics=[TokenAccuracy(crf=True)])
    x = np.zeros((16, 4, 2), "float32")
    y = np.tile(np.array([[0, 1, 0, 1]], np.int32), (16, 1))
    y[:8, 3] = -1  # padding: never scored
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    assert history.history["token_accuracy"][-1] == 1.0


def test_tag_decoder_masks_padding_and_argmax_mode_ignores_transitions():
    emissions = np.array([[[2.0, 0.0], [1.5, 1.0], [0.0, 0.0]]], "float32")
    ids = np.array([[5, 6, 0]], np.int32)
    crf = CRF(2)
    packed = ops.convert_to_numpy(crf(emissions))
    # Staying on tag 0 is heavily penalised, so Viterbi switches where argmax would not.
    packed[0, 3:5] = [[-10.0, 0.0], [0.0, 0.0]]
    viterbi = ops.convert_to_numpy(TagDecoder(2, crf=True)(packed, ids))
    argmax = ops.convert_to_numpy(TagDecoder(2, crf=True, argmax_only=True)(packed, ids))
    assert viterbi.tolist() == [[0, 1, -1]]
    assert argmax.tolist() == [[0, 0, -1]]
