"""Decoding constraints (min length, no repeated n-gram) on hand-made logits, through a real
keras_hub sampler, and a target length cap through the decoder spec."""

from __future__ import annotations

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from keras import ops  # noqa: E402

from kbuild.decoding.constraints import StepConstraints, repeated_ngram_tokens  # noqa: E402
from kbuild.names import CLS_ID  # noqa: E402

# Ids: 0 [PAD], 1 [UNK], 2 [CLS] (start and end), then words 3 ("a"), 4 ("b"), 5 ("c").
END, A, B, C = CLS_ID, 3, 4, 5
VOCAB, LENGTH = 6, 9


def _table(rows: dict[int, dict[int, float]]) -> np.ndarray:
    """Logits of the next token given the last one: the listed ones, everything else -5."""
    table = np.full((VOCAB, VOCAB), -5.0, "float32")
    for last, nexts in rows.items():
        for token, logit in nexts.items():
            table[last, token] = logit
    return table


def _greedy(table: np.ndarray, constrain: StepConstraints, beams: int = 0) -> list[int]:
    def next_token(prompt, cache, index):
        logits = ops.take(ops.convert_to_tensor(table), ops.take(prompt, index - 1, axis=1), axis=0)
        return constrain(logits, prompt, index), None, cache

    prompt = ops.convert_to_tensor(np.array([[END] + [0] * (LENGTH - 1)], "int32"))
    mask = ops.convert_to_tensor(np.array([[True] + [False] * (LENGTH - 1)]))
    if beams:
        from kbuild.decoding.beam import BeamSearch

        sampler = BeamSearch(num_beams=beams)
    else:
        sampler = keras_hub.samplers.GreedySampler()
    out = ops.convert_to_numpy(sampler(next_token, prompt, index=1, mask=mask, stop_token_ids=(END,)))[0].tolist()
    return out[1 : out.index(END, 1)] if END in out[1:] else out[1:]


# The model ends at once; without the end token it says "a", then "b", then ends.
ENDS_EARLY = _table({END: {END: 3.0, A: 2.0}, A: {END: 3.0, B: 2.0}, B: {END: 3.0, C: 2.0}, C: {END: 3.0}})


@pytest.mark.parametrize("beams", [0, 3])
def test_min_length_holds_the_end_token_back_until_that_many_tokens(beams):
    assert _greedy(ENDS_EARLY, StepConstraints(VOCAB), beams) == []
    assert _greedy(ENDS_EARLY, StepConstraints(VOCAB, min_length=1), beams) == [A]
    # Two tokens: at step 2 the end is still banned, so "a" goes on to "b", then it may end.
    assert _greedy(ENDS_EARLY, StepConstraints(VOCAB, min_length=2), beams) == [A, B]


# The model loops: a -> b -> a -> b ...; its second choices: a -> c, b -> c, c -> end.
LOOPS = _table({END: {A: 3.0}, A: {B: 3.0, C: 2.0}, B: {A: 3.0, C: 2.0}, C: {END: 3.0, A: 1.0}})


def test_no_repeat_ngram_blocks_the_token_that_would_repeat_an_ngram():
    # Without: a b a b a b a b (the buffer's 8 places, no end).
    assert _greedy(LOOPS, StepConstraints(VOCAB)) == [A, B] * 4
    # Bigrams: after "a b a", b would repeat (a b): c instead, then the end (c -> end).
    assert _greedy(LOOPS, StepConstraints(VOCAB, no_repeat_ngram_size=2)) == [A, B, A, C]
    # Trigrams: after "a b a b", a would repeat (a b a): c, then the end.
    assert _greedy(LOOPS, StepConstraints(VOCAB, no_repeat_ngram_size=3)) == [A, B, A, B, C]
    # Unigrams: no token twice: "a b", then c (a and b used), then the end.
    assert _greedy(LOOPS, StepConstraints(VOCAB, no_repeat_ngram_size=1)) == [A, B, C]


def test_repeated_ngram_tokens_per_row_ignore_the_start_token_and_positions_not_yet_decoded():
    prompt = ops.convert_to_tensor(np.array([
        [END, A, B, C, A, B, 0],  # at index 6: "a b" then "c" before: c would repeat (a b c)
        [END, A, B, A, B, A, B],  # at index 4 ("a b a" out): b would repeat (a b); later tokens unseen
    ], "int32"))
    banned = ops.convert_to_numpy(repeated_ngram_tokens(prompt[:1], 6, 3, VOCAB))
    assert np.flatnonzero(banned[0]).tolist() == [C]
    banned = ops.convert_to_numpy(repeated_ngram_tokens(prompt[1:], 4, 2, VOCAB))
    assert np.flatnonzero(banned[0]).tolist() == [B]
    # Index 1: nothing out yet; the start token is not part of any n-gram.
    assert not ops.convert_to_numpy(repeated_ngram_tokens(prompt, 1, 1, VOCAB)).any()


def test_decoder_max_length_caps_the_decoding_buffer():
    from kbuild.blocks.decoders import TransformerDecoderSpec

    assert TransformerDecoderSpec().decode_length(40) == 40  # unset: as before
    assert TransformerDecoderSpec(max_length=16).decode_length(256) == 17  # the start token, then 16
    assert TransformerDecoderSpec(max_length=80).decode_length(40) == 40


def test_decoding_options_that_cannot_apply_are_spec_errors(write_spec):
    from click.testing import CliRunner

    from kbuild.cli import cli

    path = write_spec("""\
        name: s
        task: seq2seq
        data: {train: t.en, format: parallel, target_suffix: .de}
        preprocess: {max_length: 20}
        model:
          blocks: [{type: lstm, units: 8}]
          decoder: {type: lstm, units: 8, max_length: 20, min_length: 25, length_penalty: 0.6}
        """)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "model.decoder.max_length: Expected at most preprocess.max_length - 1 (19) output tokens" in result.output
    assert "model.decoder.min_length: Expected at most the output's maximum length (19)" in result.output
    assert "model.decoder.length_penalty: a length penalty ranks beams: set search: beam" in result.output
