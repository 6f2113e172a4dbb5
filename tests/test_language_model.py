"""Task `language_model`: line-break tokens, contiguous windows, causal-only blocks, training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.lm_fixtures import GPT_BLOCK, LM_SPEC, train_lm, write_lm_spec

pytest.importorskip("tensorflow")

import tensorflow as tf  # noqa: E402

import kbuild  # noqa: E402
from kbuild.data.tokenizers import make_tokenizer  # noqa: E402
from kbuild.data.windows import window_count, window_dataset  # noqa: E402
from kbuild.spec.preprocess import CharTokenizerSpec, WordTokenizerSpec  # noqa: E402


def test_char_tokenizer_keeps_line_breaks_as_a_token_and_decodes_them_back():
    tokenizer = make_tokenizer(CharTokenizerSpec(newlines=True), max_length=32).fit(["ab\ncd\n"])
    assert "\u2424" in tokenizer.vocabulary
    ids = tokenizer.token_ids(tf.constant(["ab \ncd"]))[0].numpy().tolist()
    assert len(ids) == 5  # a b ␤ c d: the space before the break carries nothing
    assert tokenizer.decode(ids) == "ab\ncd"


def test_char_tokenizer_without_newlines_still_collapses_them_to_spaces():
    tokenizer = make_tokenizer(CharTokenizerSpec(), max_length=32).fit(["ab\ncd"])
    assert "\u2424" not in tokenizer.vocabulary
    assert tokenizer.decode(tokenizer.token_ids(tf.constant(["ab\ncd"]))[0].numpy()) == "ab cd"


def test_word_tokenizer_decodes_words_and_line_breaks():
    tokenizer = make_tokenizer(WordTokenizerSpec(newlines=True), max_length=32).fit(["to be\nor not"])
    ids = tokenizer.token_ids(tf.constant(["to be\nor not"]))[0].numpy()
    assert tokenizer.decode(ids) == "to be\nor not"


def test_ordered_windows_predict_each_token_once_with_the_tail_padded():
    stream = np.arange(3, 14, dtype=np.int32)  # 11 tokens -> 10 targets -> windows of 4: 3
    dataset, count = window_dataset(stream, 4, batch_size=8, shuffle=False), window_count(stream, 4)
    inputs, targets = next(iter(dataset))
    assert count == 3
    np.testing.assert_array_equal(inputs.numpy()[0], [3, 4, 5, 6])
    np.testing.assert_array_equal(targets.numpy()[0], [4, 5, 6, 7])
    np.testing.assert_array_equal(targets.numpy()[2], [12, 13, 0, 0])
    assert sorted(t for t in targets.numpy().ravel() if t) == list(range(4, 14))


def test_training_windows_are_shifted_contiguous_slices_at_random_offsets():
    stream = np.arange(3, 203, dtype=np.int32)
    dataset, count = window_dataset(stream, 8, batch_size=64, shuffle=True, seed=1), window_count(stream, 8)
    inputs, targets = next(iter(dataset))
    assert count == 25 and inputs.shape == (25, 8)
    np.testing.assert_array_equal(targets.numpy(), inputs.numpy() + 1)
    assert np.all(np.diff(inputs.numpy(), axis=1) == 1)
    assert len({int(row[0]) for row in inputs.numpy()}) > 5  # not a fixed tiling


@pytest.mark.parametrize(("block", "expected"), [
    ("{type: lstm, units: 8, bidirectional: true}", "bidirectional"),
    ("{type: bilstm, units: 8}", "bidirectional"),
    ("{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 8}", "attends to every position"),
])
def test_non_causal_block_in_a_language_model_is_a_spec_error(tmp_path, block, expected):
    path = tmp_path / "lm.yaml"
    path.write_text(LM_SPEC.format(name="x", text="t.txt", block=block, position="none", steps=1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "model.blocks.0.type" in result.output and expected in result.output
    assert f"{path}:14:" in result.output


def test_causal_blocks_validate_in_a_language_model(tmp_path):
    path = tmp_path / "lm.yaml"
    path.write_text(LM_SPEC.format(name="x", text="t.txt", block=GPT_BLOCK, position="learned", steps=1))
    assert CliRunner().invoke(cli, ["validate", str(path)]).exit_code == 0


def test_tail_holdout_keeps_the_end_of_the_text_for_validation(tmp_path):
    from kbuild.data.splits import read_splits

    spec = kbuild.load_spec(write_lm_spec(tmp_path, "holdout"))
    read = read_splits(spec.data, spec.seed)
    train_lines = [e.line for e in read["train"].examples]
    valid_lines = [e.line for e in read["valid"].examples]
    assert min(valid_lines) > max(train_lines) and len(valid_lines) == 12


def test_language_model_learns_and_reports_perplexity_as_exp_loss(tmp_path):
    run = train_lm(tmp_path, "lm-train", steps=60)
    results = kbuild.evaluate(run, split="valid")
    assert results["loss"] < 1.5  # uniform over ~30 characters would be ln(30) = 3.4
    assert results["perplexity"] == pytest.approx(math.exp(results["loss"]), rel=1e-3)
    # Training's final valid scores are the saved epoch's logs, and a fresh evaluation's numbers.
    recorded = json.loads((run / "results.json").read_text())
    assert recorded["scored_rows"]["valid"].get("from_validation")
    assert recorded["metrics"]["valid"] == pytest.approx(results, rel=1e-4)
    assert not (run / "assets" / "labels.txt").exists()


@pytest.mark.parametrize("tokenizer", ["{type: word, newlines: true}", "{type: wordpiece, vocab_size: 60}"])
def test_word_level_language_models_train_and_generate_words(tmp_path, tokenizer):
    from kbuild.generation import GenerationOptions, load_generator

    spec_path = write_lm_spec(tmp_path, "words", steps=30)
    spec_path.write_text(spec_path.read_text().replace("{type: char, newlines: true}", tokenizer))
    run = kbuild.train(kbuild.load_spec(spec_path), run_dir=tmp_path / "run").path
    result = load_generator(run).generate("the quick", GenerationOptions(max_new_tokens=3, jit_compile=False))
    assert result.tokens == 3
    assert "##" not in result.text and "[UNK]" not in result.text
    # Decoded with the prompt: a new word is separated from it, a continuation piece is not.
    assert result.text.startswith(" ") or tokenizer.startswith("{type: wordpiece")
