"""Task vae: spec checks, the KL schedule and free bits, training on a tiny synthetic corpus a
small model reconstructs in seconds, `kbuild generate --samples / --interpolate`, and a
fresh-process export."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli

SUBJECTS = ["a gorgeous film", "a dull mess", "the story", "this movie", "the cast"]
VERBS = ["is", "was", "seems"]
OBJECTS = ["great", "boring", "funny", "too long", "a delight", "a bore"]


def _sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(count)]


def _cli(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


SPEC = """\
name: tiny-vae
task: vae
seed: 3
data: {{train: {train}, valid: {valid}, test: {valid}}}
preprocess: {{tokenizer: {{type: word}}, max_length: 12}}
model:
  embedding: {{dim: 24, position: none}}
  blocks: [{{type: gru, units: 24}}]
  latent: {{dim: 8, kl_anneal_steps: {anneal}, free_bits: {free_bits}, word_dropout: 0.3, decoder: {{type: gru, units: 32}}}}
train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
"""


def _write(folder, anneal=60, free_bits=1.0, epochs=6):
    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text("\n".join(_sentences(480, 1)) + "\n")
    valid.write_text("\n".join(_sentences(40, 2)) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(train=train, valid=valid, anneal=anneal, free_bits=free_bits, epochs=epochs))
    return spec


# --- spec --------------------------------------------------------------------------------------
def test_vae_without_latent_is_a_spec_error_naming_the_key(write_spec):
    path = write_spec("""\
        name: x
        task: vae
        data: {train: t.txt}
        model: {blocks: [{type: gru, units: 8}], decoder: {type: lstm}}
        """)
    result = _cli("validate", path)
    assert result.exit_code == 2
    assert "model.latent" in result.output and "a vae needs a latent code" in result.output
    assert "model.decoder" in result.output


def test_init_vae_prints_a_template_that_validates(tmp_path):
    result = _cli("init", "vae")
    assert result.exit_code == 0 and "task: vae" in result.output
    path = tmp_path / "vae.yaml"
    path.write_text(result.output)
    check = CliRunner(env={"KBUILD_DATA": str(tmp_path)}).invoke(cli, ["validate", str(path)])
    assert check.exit_code == 0, check.output


# --- the KL term -------------------------------------------------------------------------------
def test_kl_weight_starts_at_zero_so_the_first_loss_is_the_reconstruction_and_free_bits_floor_it(tmp_path):
    from kbuild import load_spec
    from kbuild.layers.vae import gaussian_kl, sentence_cross_entropy
    from kbuild.names import DECODER, ENCODER, POSTERIOR
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build as build_data

    spec = load_spec(str(_write(tmp_path, anneal=4, free_bits=0.5)))
    bundle = build_data(spec, splits=("train",))
    task = TASKS.get("vae")
    model = task.build_model(spec, bundle)
    features, targets = next(iter(bundle.datasets["train"]))
    posterior = model.get_layer(POSTERIOR)

    # Step 0: the KL weight is 0, so the whole training loss is the reconstruction term.
    model(features, training=True)
    assert float(sum(model.losses)) == 0.0
    assert float(posterior.steps) == 1.0

    # Once annealed (weight 1), each dimension costs at least free_bits: an untrained encoder's
    # posterior is near the prior, so the floor is what the training loss sees.
    posterior.steps.assign(4.0)
    model(features, training=True)
    mean, log_var = model.get_layer(ENCODER)(features["source_ids"], training=False)
    kl = np.asarray(gaussian_kl(mean, log_var))
    assert float(sum(model.losses)) == pytest.approx(np.sum(np.maximum(np.mean(kl, axis=0), 0.5)), rel=1e-5)
    assert float(sum(model.losses)) >= 8 * 0.5 > np.sum(kl, axis=1).mean()
    # Half way through the schedule the weight is one half.
    posterior.steps.assign(2.0)
    model(features, training=True)
    assert float(sum(model.losses)) == pytest.approx(0.5 * np.sum(np.maximum(np.mean(kl, axis=0), 0.5)), rel=1e-5)

    # Evaluation neither advances the schedule nor weighs or floors the KL: the evaluated loss is
    # the negative ELBO (reconstruction from the posterior mean plus the plain KL).
    model.compile(optimizer="sgd", loss=task.loss(spec))
    steps = float(posterior.steps)
    evaluated = model.evaluate(features, targets, verbose=0, return_dict=True)["loss"]
    logits = model.get_layer(DECODER)([features["target_ids"], mean], training=False)
    negative_elbo = float(np.mean(np.asarray(sentence_cross_entropy(targets, logits)) + np.sum(kl, axis=1)))
    assert evaluated == pytest.approx(negative_elbo, rel=1e-4)
    assert float(posterior.steps) == steps


# --- end to end --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    spec = _write(folder)
    run = folder / "run"
    result = _cli("train", spec, "--run-dir", run)
    assert result.exit_code == 0, result.output
    return run


def test_results_report_elbo_and_its_terms(trained):
    metrics = json.loads((trained / "results.json").read_text())["metrics"]
    for split in ("train", "valid", "test"):
        m = metrics[split]
        assert {"loss", "elbo", "reconstruction", "kl", "perplexity", "active_units", "token_accuracy"} <= set(m)
        assert m["elbo"] == pytest.approx(-(m["reconstruction"] + m["kl"]), abs=1e-5)
        assert m["kl"] >= 0 and 0 <= m["active_units"] <= 8
        assert m["loss"] == pytest.approx(-m["elbo"], rel=1e-3)  # the evaluated loss is the negative ELBO
    # 90 equally likely sentences (log p(x) = -4.5 nats); 8 free nats (free_bits: 1) keep the
    # posterior off the prior, so z carries part of the sentence after a few seconds of training.
    valid = metrics["valid"]
    assert valid["elbo"] > -12 and valid["kl"] > 1.0 and valid["token_accuracy"] > 0.6, valid


def test_generate_samples_is_reproducible_with_a_seed(trained):
    first = _cli("generate", trained, "--samples", 4, "--seed", 7, "--json")
    assert first.exit_code == 0, first.output
    texts = json.loads(first.output.strip().splitlines()[-1])["texts"]
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    again = _cli("generate", trained, "--samples", 4, "--seed", 7, "--json")
    assert json.loads(again.output.strip().splitlines()[-1])["texts"] == texts
    sampled = _cli("generate", trained, "--samples", 3, "--seed", 1, "--sampler", "top_k", "--json")
    assert sampled.exit_code == 0, sampled.output
    again = _cli("generate", trained, "--samples", 3, "--seed", 1, "--sampler", "top_k", "--json")
    assert again.output == sampled.output


def test_interpolation_starts_and_ends_with_the_reconstructions(trained):
    from kbuild.generation.vae_generator import load_vae_generator

    a, b = "a gorgeous film is great", "a dull mess was a bore"
    result = _cli("generate", trained, "--interpolate", a, b, "--steps", 3)
    assert result.exit_code == 0, result.output
    texts = result.output.strip().splitlines()[-5:]
    assert len(texts) == 5
    reconstructions = load_vae_generator(trained).reconstruct([a, b])
    assert [texts[0], texts[-1]] == reconstructions
    assert all(len(text.split()) >= 3 for text in texts)


@pytest.mark.parametrize("args, message", [
    (["--samples", "0"], "Expected --samples >= 1"),
    (["--interpolate", "a gorgeous film"], "requires 2 arguments"),
    (["--interpolate", "a gorgeous film", " "], "two non-empty sentences"),
    (["--prompt", "a gorgeous"], "--prompt needs a language_model run"),
    (["--samples", "2", "--prompt", "x"], "give exactly one of"),
    ([], "give exactly one of"),
])
def test_bad_generation_requests_exit_2_with_one_line(trained, args, message):
    result = CliRunner().invoke(cli, ["generate", str(trained), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_exported_vae_serves_in_a_fresh_process_equal_to_in_process(trained, tmp_path):
    from kbuild.prediction import load_predictor

    sentences = ["the story is funny", "this movie seems too long", ""]
    assert _cli("export", trained, "--out", tmp_path / "export").exit_code == 0
    out = tmp_path / "export" / "1"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["task"] == "vae"
    assert set(metadata["signature"]["serving_default"]["outputs"]) == {"reconstruction", "mean"}
    rows = list(load_predictor(trained).predict(sentences))
    z = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32).tolist()
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text
        loaded = tf.saved_model.load({str(out)!r})
        out = loaded.signatures["serving_default"](text=tf.constant({sentences!r}))
        sampled = loaded.signatures["sample"](z=tf.constant({z!r}))["text"].numpy()
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.")]
        print(json.dumps({{"reconstruction": [t.decode() for t in out["reconstruction"].numpy()],
                          "mean": out["mean"].numpy().tolist(), "sample": [t.decode() for t in sampled]}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["reconstruction"] == [row["reconstruction"] for row in rows]
    assert np.allclose(served["mean"], [row["mean"] for row in rows], atol=1e-5)

    from kbuild.generation.options import GenerationOptions
    from kbuild.generation.vae_generator import load_vae_generator

    assert served["sample"] == load_vae_generator(trained).decode(np.asarray(z, np.float32), GenerationOptions())
