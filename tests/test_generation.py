"""Generation: cached decoding equals full recomputation, samplers, seeds, stops, bad input, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.lm_fixtures import LSTM_BLOCK, train_lm

pytest.importorskip("tensorflow")

from kbuild.generation import GenerationOptions, load_generator  # noqa: E402
from kbuild.generation.options import GenerationError  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny Transformer and a tiny LSTM language model, trained to recite two lines."""
    folder = tmp_path_factory.mktemp("gen")
    return {
        "gpt": train_lm(folder, "gpt"),
        "lstm": train_lm(folder, "lstm", block=LSTM_BLOCK, position="none"),
    }


@pytest.fixture(scope="module")
def generators(runs):
    return {name: load_generator(run) for name, run in runs.items()}


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_trained_model_continues_a_memorised_line_greedily(generators, kind):
    result = generators[kind].generate("the quick brown", GenerationOptions(max_new_tokens=12))
    assert result.text == " fox jumps o"


@pytest.mark.parametrize(("kind", "sampler"), [
    ("gpt", "greedy"), ("gpt", "top_k"), ("gpt", "top_p"), ("gpt", "beam"), ("lstm", "top_p"), ("lstm", "beam"),
])
def test_cached_decoding_gives_the_same_tokens_as_rerunning_the_window(generators, kind, sampler):
    # 30 tokens with a 24-token context: the cached run slides and re-reads its window too.
    options = dict(max_new_tokens=30, sampler=sampler, seed=3, temperature=1.5, num_beams=3)
    cached = generators[kind].generate("a stitch", GenerationOptions(**options))
    full = generators[kind].generate("a stitch", GenerationOptions(**options, use_cache=False))
    assert cached.text == full.text and cached.tokens == 30


def test_same_seed_same_text_and_other_seeds_differ(generators):
    def sample(seed):
        options = GenerationOptions(max_new_tokens=60, sampler="top_k", top_k=20, temperature=3.0, seed=seed)
        return generators["gpt"].generate("the", options).text

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_stop_token_ends_generation_after_it(generators):
    result = generators["gpt"].generate("the quick", GenerationOptions(max_new_tokens=100, stop=("\n",)))
    assert result.text == " brown fox jumps over the lazy dog\n"


def test_recurrent_model_without_positions_has_no_context_limit(generators):
    assert generators["lstm"].context is None and generators["gpt"].context == 24
    long_prompt = "a stitch in time saves nine\n" * 3
    assert generators["lstm"].generate(long_prompt, GenerationOptions(max_new_tokens=3)).notes == []


def test_prompt_longer_than_the_context_is_cut_from_the_left_with_a_note(generators):
    prompt = "the quick brown fox jumps over the lazy dog\nthe quick"
    result = generators["gpt"].generate(prompt, GenerationOptions(max_new_tokens=6))
    assert result.notes and "kept its last 23 tokens" in result.notes[0]
    assert result.text == " brown"


@pytest.mark.parametrize(("prompt", "message"), [
    ("", "the prompt is empty"),
    ("the quick €uro", "'€'"),
])
def test_unusable_prompts_are_clear_errors(generators, prompt, message):
    with pytest.raises(GenerationError, match=message):
        generators["gpt"].generate(prompt, GenerationOptions(max_new_tokens=3))


@pytest.mark.parametrize(("options", "message"), [
    ({"max_new_tokens": 0}, "max_new_tokens between 1"),
    ({"max_new_tokens": 10**7}, "max_new_tokens between 1"),
    ({"sampler": "nucleus"}, "unknown sampler"),
    ({"temperature": 0.0}, "temperature > 0"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_generation_options_are_refused(options, message):
    with pytest.raises(GenerationError, match=message):
        GenerationOptions(**options)


def test_multi_token_stop_text_is_refused(generators):
    with pytest.raises(GenerationError, match="not a single token"):
        generators["gpt"].generate("the", GenerationOptions(stop=("fox",)))


def test_generate_command_prints_prompt_and_continuation(runs):
    result = CliRunner().invoke(cli, ["generate", str(runs["gpt"]), "--prompt", "the quick", "--sampler",
                                      "greedy", "--max-new-tokens", "6", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["completion"] == " brown"


def test_generate_command_reports_bad_input_without_traceback(runs):
    result = CliRunner().invoke(cli, ["generate", str(runs["gpt"]), "--prompt", "x", "--max-new-tokens", "0"])
    assert result.exit_code == 2 and "max_new_tokens" in result.output and "Traceback" not in result.output
