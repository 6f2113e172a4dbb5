"""A pretrained backbone from spec to export, per task: train a few steps on a tiny Hugging Face
folder, export, and serve raw strings in a fresh process with only tensorflow and tensorflow_text
imported, equal to the in-process predictions (full fine-tuning and LoRA alike)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import kbuild  # noqa: E402
from kbuild.prediction import load_predictor  # noqa: E402
from tests.pretrained_fixtures import write_hugging_face  # noqa: E402

SENTENCES = ["the acting is brilliant and moving .", "a dull , tedious film", "", "unseenword zzz"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-bert"
    write_hugging_face(folder)
    return folder


def _train(folder, text: str):
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(text))
    return kbuild.train(kbuild.load_spec(spec), run_dir=folder / "run")


def _fresh_process(export, sentences, outputs: list[str]) -> dict:
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # registers tf-text ops; nothing else is imported
        serve = tf.saved_model.load({str(export)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({sentences!r}))
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.") or m.startswith("keras_hub")]
        print(json.dumps({{k: out[k].numpy().tolist() for k in {outputs!r}}}, default=lambda b: b.decode()))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("lora", [None, "{rank: 2}"], ids=["full", "lora"])
def test_classifier_exports_raw_string_serving_equal_to_in_process(checkpoint, tmp_path, lora):
    run = _train(tmp_path, f"""\
        name: tiny-minilm
        task: classification
        seed: 3
        data: {{builtin: sentiment, limit: 96}}
        preprocess: {{max_length: 16, bucketing: true}}
        model:
          backbone: {{from: {checkpoint}, lora: {lora or 'null'}}}
          pooling: mean
        train: {{epochs: 1, batch_size: 16, max_steps: 4, optimizer: {{name: adamw, learning_rate: 1.0e-3}}}}
        """)
    results = run.results
    assert results["trainable_parameters"] < results["parameters"]  # the pooler (and with LoRA, nearly all)
    if lora:
        assert results["trainable_parameters"] < results["parameters"] / 4
    export = kbuild.export(run.path, tmp_path / "export")
    in_process = list(load_predictor(run.path).predict(SENTENCES))
    fresh = _fresh_process(export, SENTENCES, ["probabilities", "label"])
    labels = results["labels"]
    expected = [[row["probabilities"][label] for label in labels] for row in in_process]
    np.testing.assert_allclose(fresh["probabilities"], expected, atol=1e-5)
    assert fresh["label"] == [row["label"] for row in in_process]
    # The run is self-contained: evaluation reloads model.keras and the tokenizer from assets.
    assert kbuild.evaluate(run.path, split="test")["accuracy"] == pytest.approx(results["metrics"]["test"]["accuracy"])


def _conll(count: int) -> str:
    names, places = ["Angela Merkel", "John Smith", "Maria Garcia"], ["Paris", "Berlin", "New York"]
    rows = []
    for i in range(count):
        words = [(w, "I-PER") for w in names[i % 3].split()] + [("visited", "O")]
        words += [(w, "I-LOC") for w in places[(i // 3) % 3].split()] + [(".", "O")]
        rows.append("\n".join(f"{w} X X {t}" for w, t in words))
    return "-DOCSTART- -X- -X- O\n\n" + "\n\n".join(rows) + "\n"


@pytest.mark.slow
def test_tagger_labels_words_by_first_subtoken_and_serves_them(checkpoint, tmp_path):
    (tmp_path / "train.txt").write_text(_conll(48))
    run = _train(tmp_path, f"""\
        name: tiny-bert-tagger
        task: tagging
        seed: 3
        data: {{train: {tmp_path}/train.txt, valid: {tmp_path}/train.txt, format: conll}}
        preprocess: {{max_length: 12, tag_scheme: bio}}
        model: {{backbone: {{from: {checkpoint}}}, head: {{type: softmax}}}}
        train: {{epochs: 1, batch_size: 16, max_steps: 3}}
        """)
    assert {"f1", "token_accuracy"} <= set(run.results["metrics"]["valid"])
    sentences = ["Angela Merkel visited Paris .", "Maria Garcia visited New York ."]
    export = kbuild.export(run.path, tmp_path / "export")
    in_process = list(load_predictor(run.path).predict(sentences))
    fresh = _fresh_process(export, sentences, ["tokens", "tags", "length"])
    got = [{"tokens": t[:n], "tags": g[:n]} for t, g, n in zip(fresh["tokens"], fresh["tags"], fresh["length"], strict=True)]
    assert got == [{"tokens": row["tokens"], "tags": row["tags"]} for row in in_process]
    assert got[1]["tokens"] == "Maria Garcia visited New York .".split()  # one tag per word, not per piece


def _rows(pattern: dict[str, str], count: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["text\tlabel"]
    for _ in range(count):
        words = list(rng.choice(list(pattern), size=2))
        lines.append(f"news about {' and '.join(words)}\t{pattern[words[0]]}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("task, labels, output", [
    ("regression", {"great": "1.0", "dull": "-1.0", "good": "0.5"}, "value"),
    ("multilabel", {"goal": "sports", "vote": "politics|news", "stock": "business"}, "labels"),
])
def test_regression_and_multilabel_heads_train_and_export(checkpoint, tmp_path, task, labels, output):
    (tmp_path / "train.tsv").write_text(_rows(labels, 64, 0))
    run = _train(tmp_path, f"""\
        name: tiny-bert-{task}
        task: {task}
        seed: 3
        data: {{train: {tmp_path}/train.tsv, valid: {tmp_path}/train.tsv{", label_separator: '|'" if task == "multilabel" else ""}}}
        preprocess: {{max_length: 12}}
        model: {{backbone: {{from: {checkpoint}, freeze_layers: 1}}, pooling: cls}}
        train: {{epochs: 1, batch_size: 16, max_steps: 3}}
        """)
    export = kbuild.export(run.path, tmp_path / "export")
    sentences = ["news about goal and vote", "news about stock and great"]
    assert [row[output] for row in kbuild.predict(export, sentences)] == [row[output] for row in kbuild.predict(run.path, sentences)]
