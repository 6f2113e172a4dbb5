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


def options(**kwargs) -> GenerationOptions:
    """Options without XLA: compiling per test would cost more than the tests themselves (one
    test below covers the XLA path)."""
    return GenerationOptions(**{"jit_compile": False, **kwargs})


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
    result = generators[kind].generate("the quick brown", options(max_new_tokens=12))
    assert result.text == " fox jumps o"


@pytest.mark.parametrize(("kind", "sampler"), [
    ("gpt", "greedy"), ("gpt", "top_k"), ("gpt", "top_p"), ("gpt", "beam"), ("lstm", "top_p"), ("lstm", "beam"),
])
def test_cached_decoding_gives_the_same_tokens_as_rerunning_the_window(generators, kind, sampler):
    # 30 tokens with a 24-token context: the cached run slides and re-reads its window too.
    settings = dict(max_new_tokens=30, sampler=sampler, seed=3, temperature=1.5, num_beams=3)
    cached = generators[kind].generate("a stitch", options(**settings))
    full = generators[kind].generate("a stitch", options(**settings, use_cache=False))
    assert cached.text == full.text and cached.tokens == 30


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_xla_compiled_decoding_matches_greedily_and_repeats_its_samples(generators, kind):
    greedy = dict(max_new_tokens=30, sampler="greedy")
    compiled = generators[kind].generate("a stitch in", GenerationOptions(**greedy))
    assert compiled.text == generators[kind].generate("a stitch in", options(**greedy)).text
    # XLA draws its random numbers differently, so sampled text depends on the seed and on
    # jit_compile; with both fixed it repeats.
    sampled = dict(max_new_tokens=30, sampler="top_p", seed=2, temperature=1.5)
    first = generators[kind].generate("a", GenerationOptions(**sampled)).text
    assert generators[kind].generate("a", GenerationOptions(**sampled)).text == first


def test_same_seed_same_text_and_other_seeds_differ(generators):
    def sample(seed):
        settings = options(max_new_tokens=60, sampler="top_k", top_k=20, temperature=3.0, seed=seed)
        return generators["gpt"].generate("the", settings).text

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_stop_token_ends_generation_after_it(generators):
    result = generators["gpt"].generate("the quick", options(max_new_tokens=100, stop=("\n",)))
    assert result.text == " brown fox jumps over the lazy dog\n"


def test_recurrent_model_without_positions_has_no_context_limit(generators):
    assert generators["lstm"].context is None and generators["gpt"].context == 24
    long_prompt = "a stitch in time saves nine\n" * 3
    assert generators["lstm"].generate(long_prompt, options(max_new_tokens=3)).notes == []


def test_prompt_longer_than_the_context_is_cut_from_the_left_with_a_note(generators):
    prompt = "the quick brown fox jumps over the lazy dog\nthe quick"
    result = generators["gpt"].generate(prompt, options(max_new_tokens=6))
    assert result.notes and "kept its last 23 tokens" in result.notes[0]
    assert result.text == " brown"


@pytest.mark.parametrize(("prompt", "message"), [
    ("", "the prompt is empty"),
    ("the quick €uro", "'€'"),
])
def test_unusable_prompts_are_clear_errors(generators, prompt, message):
    with pytest.raises(GenerationError, match=message):
        generators["gpt"].generate(prompt, options(max_new_tokens=3))


@pytest.mark.parametrize(("bad", "message"), [
    ({"max_new_tokens": 0}, "max_new_tokens between 1"),
    ({"max_new_tokens": 10**7}, "max_new_tokens between 1"),
    ({"sampler": "nucleus"}, "unknown sampler"),
    ({"temperature": 0.0}, "temperature > 0"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_generation_options_are_refused(bad, message):
    with pytest.raises(GenerationError, match=message):
        GenerationOptions(**bad)


def test_multi_token_stop_text_is_refused(generators):
    with pytest.raises(GenerationError, match="not a single token"):
        generators["gpt"].generate("the", options(stop=("fox",)))


def test_generate_command_prints_prompt_and_continuation(runs):
    result = CliRunner().invoke(cli, ["generate", str(runs["gpt"]), "--prompt", "the quick", "--sampler",
                                      "greedy", "--max-new-tokens", "6", "--no-jit", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["completion"] == " brown"


def test_generate_command_reports_bad_input_without_traceback(runs):
    result = CliRunner().invoke(cli, ["generate", str(runs["gpt"]), "--prompt", "x", "--max-new-tokens", "0"])
    assert result.exit_code == 2 and "max_new_tokens" in result.output and "Traceback" not in result.output


def test_generate_command_refuses_vae_requests_on_a_language_model(runs):
    result = CliRunner().invoke(cli, ["generate", str(runs["gpt"]), "--samples", "3"])
    assert result.exit_code == 2 and "--samples needs a vae run" in result.output and "takes --prompt" in result.output


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (only tf and tf-text: no kbuild code)
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["generate"](prompt=tf.constant(["the quick", "a stitch in"]), max_new_tokens=tf.constant(8))
default = loaded.signatures["serving_default"](text=tf.constant(["the quick"]))
print(json.dumps({"generate": [c.decode() for c in out["completion"].numpy()],
                  "text": out["text"].numpy()[0].decode(),
                  "default": default["completion"].numpy()[0].decode(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] == "kbuild")}))
"""


@pytest.mark.parametrize("kind", ["gpt", pytest.param("lstm", marks=pytest.mark.slow)])
def test_exported_generate_signature_matches_in_process_greedy_in_a_fresh_process(runs, generators, tmp_path, kind):
    import subprocess
    import sys

    import kbuild
    from kbuild.tasks.language_model import EXPORT_NEW_TOKENS

    export = kbuild.export(runs[kind], tmp_path / "export")
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(export)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["modules"] == []
    expected = [generators[kind].generate(p, options(max_new_tokens=8)).text for p in ("the quick", "a stitch in")]
    assert got["generate"] == expected and got["text"] == "the quick" + expected[0]
    # serving_default: greedy, EXPORT_NEW_TOKENS at most, within one window for the Transformer.
    room = EXPORT_NEW_TOKENS if generators[kind].context is None else generators[kind].context - 9
    assert got["default"] == generators[kind].generate("the quick", options(max_new_tokens=room)).text
    metadata = json.loads((export / "metadata.json").read_text())
    assert set(metadata["signature"]) == {"serving_default", "generate"}


def test_predict_on_an_exported_language_model_returns_completions(runs, tmp_path):
    import kbuild

    export = kbuild.export(runs["gpt"], tmp_path / "export")
    rows = kbuild.predict(export, ["the quick"])
    assert rows[0]["prompt"] == "the quick" and rows[0]["completion"].startswith(" brown fox")


def test_kbuild_serve_answers_both_language_model_signatures(runs, tmp_path):
    """TF Serving's REST API over an exported language model: `serving_default` with row-format
    instances, `generate` by `signature_name` with columnar inputs (its length is a scalar)."""
    from starlette.testclient import TestClient

    import kbuild
    from kbuild.serve import ServerSettings, create_app, load_repository

    kbuild.export(runs["gpt"], tmp_path / "exports" / "lm")
    app = create_app(load_repository(tmp_path / "exports"), ServerSettings(max_batch_size=4))
    with TestClient(app) as client:
        default = client.post("/v1/models/lm:predict", json={"instances": ["the quick"]})
        generated = client.post("/v1/models/lm:predict", json={
            "signature_name": "generate", "inputs": {"prompt": ["the quick"], "max_new_tokens": 6}})
        rows = client.post("/v1/models/lm:predict", json={
            "signature_name": "generate", "instances": [{"prompt": "the quick", "max_new_tokens": 6}]})
    assert rows.status_code == 400 and "columnar format" in rows.json()["error"]
    assert default.status_code == 200, default.text
    assert default.json()["predictions"][0]["completion"].startswith(" brown fox")
    assert generated.status_code == 200, generated.text
    outputs = generated.json()["outputs"]
    assert outputs["completion"][0].startswith(" brown") and len(outputs["completion"][0]) <= 12
