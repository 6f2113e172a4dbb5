"""A tagger from spec to export: train, evaluate (entity F1), export, predict in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kbuild.cli import cli

pytest.importorskip("tensorflow")

from kbuild.prediction import load_predictor  # noqa: E402

NAMES = ["Angela Merkel", "John Smith", "Maria Garcia"]
PLACES = ["Paris", "Berlin", "New York"]
SENTENCES = ["Angela Merkel visited Paris on Monday .", "John Smith left  Berlin", "nobody went anywhere", ""]


def _conll(count: int) -> str:
    rows = []
    for i in range(count):
        name, place = NAMES[i % 3].split(), PLACES[(i // 3) % 3].split()
        words = [(w, "I-PER") for w in name] + [("visited", "O")] + [(w, "I-LOC") for w in place] + [(".", "O")]
        rows.append("\n".join(f"{w} X X {t}" for w, t in words))
    return "-DOCSTART- -X- -X- O\n\n" + "\n\n".join(rows) + "\n"


def _cli(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


WORDS = """\
    preprocess: {tokenizer: {type: whitespace}, max_length: 8, tag_scheme: bioes, bucketing: true}
    model:
      embedding: {dim: 16, position: none, chars: {dim: 8, filters: 8, max_chars: 8}}
      blocks: [{type: bilstm, units: 16}]
      head: {type: crf}
    """
SUBWORDS = """\
    preprocess: {tokenizer: {type: wordpiece, vocab_size: 120}, max_length: 24, tag_scheme: bioes, bucketing: true}
    model:
      embedding: {dim: 16, position: none}
      blocks: [{type: bilstm, units: 16}]
      head: {type: softmax}
    """


# One word per id with char features and a CRF; and subwords labelled by their first piece, with a
# softmax head: both must tag, score, export and serve words alike. Selected on val_loss: on this
# toy set val_f1 reaches 1.0 within a few epochs and would keep that early, less confident model.
@pytest.fixture(scope="module", params=[WORDS, SUBWORDS], ids=["words-crf", "wordpiece-softmax"])
def trained(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagger")
    (folder / "train.txt").write_text(_conll(48))
    (folder / "valid.txt").write_text(_conll(9))
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-tagger
        task: tagging
        seed: 3
        data: {{train: {folder}/train.txt, valid: {folder}/valid.txt, test: {folder}/valid.txt, format: conll}}
        train: {{epochs: 12, batch_size: 8, optimizer: {{name: adam, learning_rate: 0.02}}, monitor: val_loss}}
        """) + textwrap.dedent(request.param))
    run = folder / "run"
    result = _cli("train", spec, "--run-dir", run)
    assert result.exit_code == 0, result.output
    return run


def test_training_reports_entity_scores_per_type(trained):
    results = json.loads((trained / "results.json").read_text())
    test = results["metrics"]["test"]
    assert {"loss", "precision", "recall", "f1", "token_accuracy", "per_type"} <= set(test)
    assert set(test["per_type"]) >= {"PER", "LOC"} and test["per_type"]["PER"]["support"] == 9
    # The pattern is trivial: a working tagger gets it right.
    assert test["f1"] > 0.9


def test_evaluate_cli_prints_the_same_entity_scores(trained):
    result = _cli("evaluate", trained, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    recorded = json.loads((trained / "results.json").read_text())["metrics"]["test"]
    assert metrics["f1"] == pytest.approx(recorded["f1"]) and metrics["per_type"] == recorded["per_type"]


def test_exported_tagger_serves_raw_sentences_in_a_fresh_process_equal_to_in_process(trained, tmp_path):
    assert _cli("export", trained, "--out", tmp_path / "export").exit_code == 0
    out = tmp_path / "export" / "1"  # TF Serving's versioned layout
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["task"] == "tagging" and metadata["signature"]["serving_default"]["outputs"] == ["length", "tags", "tokens"]

    in_process = list(load_predictor(trained).predict(SENTENCES))
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # registers tf-text ops; nothing else is imported
        serve = tf.saved_model.load({str(out)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({SENTENCES!r}))
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.")]
        rows = []
        for tokens, tags, n in zip(out["tokens"].numpy(), out["tags"].numpy(), out["length"].numpy()):
            rows.append({{"tokens": [t.decode() for t in tokens[:n]], "tags": [t.decode() for t in tags[:n]]}})
        print(json.dumps(rows))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh == [{"tokens": row["tokens"], "tags": row["tags"]} for row in in_process]
    assert fresh[0]["tokens"] == "Angela Merkel visited Paris on Monday .".split()
    assert fresh[1]["tokens"] == ["John", "Smith", "left", "Berlin"] and fresh[3] == {"tokens": [], "tags": []}
    assert in_process[0]["entities"][0] == {"type": "PER", "start": 0, "end": 2, "text": "Angela Merkel"}


def test_predict_cli_tags_sentences_from_stdin(trained):
    result = _cli("predict", trained, "--input", "-", input="Maria Garcia visited Berlin .\n")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["tokens"] == ["Maria", "Garcia", "visited", "Berlin", "."]
    assert [e["type"] for e in row["entities"]] == ["PER", "LOC"]
