"""`task: language_model` from a decoder checkpoint (continued pretraining) on the tiny llama
(tests/llama_fixtures.py): windows read with the checkpoint's tokenizer, every real token weighted,
keras_hub's `CausalLM` trained with LoRA, scored, generated from and served."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

pytest.importorskip("gguf")

from kbuild.errors import SpecError  # noqa: E402
from tests.llama_fixtures import converted_tiny_llama  # noqa: E402

LINES = [f"the cat is {'the ' * (i % 4)}cat {i}" for i in range(24)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return converted_tiny_llama(tmp_path_factory.mktemp("lm-checkpoint"))


def write_lm_spec(folder, checkpoint, extra: str = "", valid: str = "the cat is the cat\nis the cat\n") -> str:
    (folder / "train.txt").write_text("".join(f"{line}\n" for line in LINES), encoding="utf-8")
    (folder / "valid.txt").write_text(valid, encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tinylm
        task: language_model
        seed: 1
        data: {{train: {folder / "train.txt"}, valid: {folder / "valid.txt"}, format: text}}
        preprocess: {{max_length: 16}}
        model: {{backbone: {{from: {checkpoint}, lora: {{rank: 2}}}}}}
        train: {{epochs: 2, batch_size: 4, max_steps: 3, jit_compile: false, steps_per_execution: 1}}
    """) + extra, encoding="utf-8")
    return str(spec)


def test_a_language_model_spec_takes_a_decoder_checkpoint_but_no_blocks(write_spec, tmp_path):
    from kbuild import load_spec

    path = write_spec(f"""\
        name: lm
        task: language_model
        data: {{train: {tmp_path / "x.txt"}, format: text}}
        model:
          backbone: {{from: ./pretrained/SmolLM2-135M-Instruct}}
          blocks: [{{type: transformer_decoder, layers: 1}}]
        train: {{monitor: val_token_loss}}
    """)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert "spec.yaml:6:" in str(error.value) and "remove model.blocks" in str(error.value)
    assert "val_token_loss" not in str(error.value)  # a checkpoint's run logs it, so it may be monitored
    bucketed = write_spec(f"""\
        name: lm
        task: language_model
        data: {{train: {tmp_path / "x.txt"}, format: text}}
        preprocess: {{bucketing: true}}
        model: {{backbone: {{from: ./pretrained/SmolLM2-135M-Instruct}}}}
    """, "bucketed.yaml")
    with pytest.raises(SpecError, match=r"bucketed.yaml:4:.*nothing to bucket"):
        load_spec(bucketed)


def test_an_encoder_checkpoint_is_refused_before_anything_heavy(tmp_path):
    import kbuild
    from kbuild.pretrained.checkpoint import CheckpointError
    from kbuild.tasks.bundle import build
    from tests.pretrained_fixtures import write_hugging_face

    encoder = tmp_path / "tiny-bert"
    write_hugging_face(encoder)
    spec = kbuild.load_spec(write_lm_spec(tmp_path, encoder))
    with pytest.raises(CheckpointError, match="causal language model"):
        build(spec, splits=("train",))


def test_windows_weigh_every_real_token_once_and_feed_the_causal_lm(tmp_path, checkpoint):
    import kbuild
    from kbuild.data.windows import token_stream
    from kbuild.tasks.bundle import build

    spec = kbuild.load_spec(write_lm_spec(tmp_path, checkpoint))
    bundle = build(spec, splits=("train", "valid"))
    stream = token_stream(bundle.tokenizer, ["the cat is the cat\n", "is the cat\n"])
    batches = list(bundle.datasets["valid"])
    inputs = np.concatenate([x["token_ids"].numpy() for x, _, _ in batches]).ravel()
    mask = np.concatenate([x["padding_mask"].numpy() for x, _, _ in batches]).ravel()
    targets = np.concatenate([y.numpy() for _, y, _ in batches]).ravel()
    weights = np.concatenate([w.numpy() for _, _, w in batches]).ravel()
    tokens = len(stream) - 1
    assert weights.sum() == tokens and weights[:tokens].all()  # each next token once, the tail none
    assert mask.sum() == len(stream) and (inputs[:tokens] == stream[:-1]).all() and (targets[:tokens] == stream[1:]).all()
    assert (inputs[len(stream):] == bundle.tokenizer.pad_id).all()
    x, y, w = next(iter(bundle.datasets["train"]))
    assert x["token_ids"].shape == (4, 16) and x["padding_mask"].numpy().all() and w.numpy().all()
    assert (x["token_ids"].numpy()[:, 1:] == y.numpy()[:, :-1]).all()


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, checkpoint):
    import kbuild

    folder = tmp_path_factory.mktemp("lm-run")
    return kbuild.train(kbuild.load_spec(write_lm_spec(folder, checkpoint)), run_dir=folder / "run")


def test_a_lora_run_continues_the_checkpoint_and_scores_valid_from_its_saved_epoch(lm_run):
    import kbuild

    results = lm_run.results
    assert results["steps"] == 3 and results["trainable_parameters"] < results["parameters"] / 10
    valid = results["metrics"]["valid"]
    assert results["scored_rows"]["valid"]["from_validation"] is True
    assert valid["perplexity"] == pytest.approx(np.exp(valid["loss"]), rel=1e-4)
    fresh = kbuild.evaluate(lm_run.path, split="valid")
    assert fresh["tokens"] == valid["tokens"] and fresh["loss"] == pytest.approx(valid["loss"], rel=1e-5)
    logged = [json.loads(line) for line in (lm_run.path / "metrics.jsonl").read_text().splitlines()]
    assert {"perplexity", "token_loss", "val_perplexity", "val_token_loss"} <= set(logged[-1])


def test_generate_on_the_run_gives_the_served_greedy_continuation_and_samples_repeatably(lm_run):
    import tensorflow as tf
    from click.testing import CliRunner

    from kbuild.cli import cli
    from kbuild.exporter.serving import load_servable

    served = load_servable(str(lm_run.path)).functions["generate"]
    expected = served(prompt=tf.constant(["the cat"]), max_new_tokens=tf.constant(6))["completion"].numpy()[0]
    runner = CliRunner()
    greedy = runner.invoke(cli, ["generate", str(lm_run.path), "--prompt", "the cat", "--sampler", "greedy",
                                 "--max-new-tokens", "6", "--json"])
    assert greedy.exit_code == 0, greedy.output
    row = json.loads(greedy.stdout.strip().splitlines()[-1])
    assert row["completion"] == expected.decode("utf-8", "replace") and 1 <= row["tokens"] <= 6
    sampled = [runner.invoke(cli, ["generate", str(lm_run.path), "--prompt", "the cat", "--seed", "3",
                                   "--max-new-tokens", "6", "--json"]) for _ in range(2)]
    assert sampled[0].exit_code == 0, sampled[0].output
    assert sampled[0].stdout == sampled[1].stdout
    beam = runner.invoke(cli, ["generate", str(lm_run.path), "--prompt", "the cat", "--sampler", "beam"])
    assert beam.exit_code == 2 and "beam search is for kbuild's own models" in beam.output


def test_predict_on_the_run_continues_each_line(lm_run):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["predict", str(lm_run.path)], input='{"text": "the cat"}\n')
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["prompt"] == "the cat" and isinstance(row["completion"], str)


@pytest.mark.slow  # an export with the tokenizer and the decoding loop in its graph: minutes on 2 busy cores
def test_the_export_continues_text_in_a_fresh_process_as_the_run_does(lm_run):
    import os
    import subprocess
    import sys

    import tensorflow as tf

    import kbuild
    from kbuild.exporter.serving import load_servable

    version = kbuild.export(lm_run.path, lm_run.path.parent / "export" / "tinylm")
    served = load_servable(str(lm_run.path)).functions["generate"]
    expected = served(prompt=tf.constant(["the cat", "is"]), max_new_tokens=tf.constant(5))["completion"].numpy()
    script = textwrap.dedent(f"""
        import json, sys, tensorflow as tf, tensorflow_text
        loaded = tf.saved_model.load({str(version)!r})
        out = loaded.signatures["generate"](prompt=tf.constant(["the cat", "is"]), max_new_tokens=tf.constant(5))
        default = loaded.signatures["serving_default"](text=tf.constant(["the cat"]))
        assert "keras_hub" not in sys.modules and "kbuild" not in sys.modules
        print(json.dumps({{"completions": [c.decode("utf-8", "replace") for c in out["completion"].numpy()],
                          "text": default["text"].numpy()[0].decode("utf-8", "replace")}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    assert fresh["completions"] == [c.decode("utf-8", "replace") for c in expected]
    assert fresh["text"].startswith("the cat" + fresh["completions"][0][:1])


def test_report_on_the_run_shows_perplexity_and_continuations(lm_run):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["report", str(lm_run.path), "--max-examples", "4"])
    assert result.exit_code == 0, result.output
    page = (lm_run.path / "report.html").read_text(encoding="utf-8")
    assert "Perplexity" in page and "Generated samples" in page and "the cat is" in page


def test_mirrored_over_two_logical_cpus_trains_and_scores_the_checkpoint_as_one_device_does(tmp_path, checkpoint):
    """keras_hub's CausalLM with LoRA under MirroredStrategy trains, and scores valid (in-order
    tiles, the last batch uneven across the replicas) exactly as one device does. The learning
    rate is all but zero: Keras builds a distributed model from a first batch of its own, which
    moves the random train offsets on by one pass, so trained weights would differ by data alone.
    (valid starts with a full batch: that build averages the first batch over the replicas, which
    fails for one that does not split evenly, a split smaller than one batch.)"""
    from tests.test_distributed import _kbuild

    spec = write_lm_spec(tmp_path, checkpoint, valid="".join(f"{line}\n" for line in reversed(LINES)))
    still = ["--set", "train.optimizer={name: sgd, learning_rate: 1.0e-12}", "--set", "train.max_steps=2",
             "--set", "train.epochs=1"]
    results = {}
    for strategy in ("cpu", "mirrored"):
        proc = _kbuild("train", spec, "--run-dir", tmp_path / strategy, "--set", f"train.strategy={strategy}", *still)
        results[strategy] = json.loads((tmp_path / strategy / "results.json").read_text())
    assert "strategy mirrored (2 replica(s)" in proc.stderr and results["mirrored"]["steps"] == 2
    one, two = results["cpu"]["metrics"]["valid"], results["mirrored"]["metrics"]["valid"]
    assert one["tokens"] == two["tokens"] and one["tokens"] % 64 and one["loss"] == pytest.approx(two["loss"], abs=1e-5)
