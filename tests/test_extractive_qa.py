"""extractive_qa end to end: a tiny model trained a few steps on a SQuAD-format file made here,
evaluated with exact match / F1, exported, and answering in a fresh process with only tensorflow
and tensorflow_text: every answer is the context's text at [start, end), whatever the context's
length. `kbuild predict` reads JSON lines {"question", "context"}."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo"]
FILLER = ["the", "weather", "was", "fine", "and", "people", "walked"]

SPEC = """\
name: tiny-qa
task: extractive_qa
seed: 3
data: {{train: {train}, format: squad, valid_fraction: 0.25, holdout: article}}
preprocess:
  tokenizer: {{type: wordpiece, vocab_size: 200, min_frequency: 1}}
  max_length: 24
  doc_stride: 4
  max_query_length: 8
model:
  embedding: {{dim: 32}}
  blocks: [{{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 64}}]
train: {{epochs: 1, batch_size: 16, max_steps: 8, optimizer: {{name: adamw, learning_rate: 3.0e-3}}}}
"""


def squad_file(path, articles: int = 8, seed: int = 0) -> None:
    """Who lives where: contexts long enough to need several windows of 24 tokens."""
    rng = random.Random(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(3):
            person, city = rng.choice(NAMES), rng.choice(CITIES)
            filler = " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 30)))
            context = f"{filler}. {person} lives in {city}. {filler}."
            qas = [{"id": f"{a}-{p}-0", "question": f"Where does {person} live?",
                    "answers": [{"text": city, "answer_start": context.index(f" in {city}") + 4}]},
                   {"id": f"{a}-{p}-1", "question": f"Who lives in {city}?",
                    "answers": [{"text": person, "answer_start": context.index(person)}]}]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    import kbuild

    folder = tmp_path_factory.mktemp("qa")
    squad_file(folder / "train.json")
    (folder / "spec.yaml").write_text(SPEC.format(train=folder / "train.json"))
    run = kbuild.train(kbuild.load_spec(folder / "spec.yaml"), run_dir=folder / "run").path
    return run, kbuild.export(run, folder / "export" / "qa")


def test_training_logs_and_reports_exact_match_and_f1(qa_run):
    import kbuild

    run, _ = qa_run
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"val_f1", "val_exact_match", "val_loss"} <= set(epochs[-1])
    results = json.loads((run / "results.json").read_text())
    valid = results["metrics"]["valid"]
    assert 0.0 <= valid["exact_match"] <= valid["f1"] <= 100.0
    # The saved epoch's validation is the final valid score: not answered a second time, and equal
    # to a fresh `evaluate` of the saved model.
    assert results["scored_rows"]["valid"]["from_validation"] is True
    fresh = kbuild.evaluate(run, split="valid")
    assert fresh["f1"] == pytest.approx(valid["f1"]) and fresh["exact_match"] == pytest.approx(valid["exact_match"])
    assert fresh["loss"] == pytest.approx(valid["loss"], rel=1e-5)


def test_windows_cut_to_the_longest_of_a_call_answer_as_the_padded_ones(qa_run, monkeypatch):
    """`trim` (runs trained on bucketed batches): the model reads each call's windows only up to the
    longest one's end; padding is masked, so the answers and their scores are the padded ones."""
    import numpy as np
    import tensorflow as tf

    import kbuild.tasks.qa_decoding as decoding
    from kbuild.runs import RunFolder, load_trained_model
    from kbuild.tasks.bundle import load_assets
    from kbuild.tasks.extractive_qa import qa_settings, window_shape

    run, _ = qa_run
    spec = kbuild_spec(run)
    model, assets = load_trained_model(RunFolder(run)), load_assets(spec, run / "assets")
    monkeypatch.setattr(decoding, "TRIM_MULTIPLE", 8)
    questions = ["Where does Bob live?", "Who lives in Oslo?", "Who?"]
    contexts = ["Bob lives in Lima.", "the weather was fine. " * 12 + "Carol lives in Oslo.", "Erin lives in Rome."]
    seen = []
    original = decoding.window_logits
    monkeypatch.setattr(decoding, "window_logits", lambda *a, **k: seen.append(a[3]) or original(*a, **k))
    answers = {}
    for trim in (False, True):
        answer = tf.function(decoding.answer_graph(assets.tokenizer, model, window_shape(spec), qa_settings(spec), trim))
        short = answer(tf.constant(questions[:1]), tf.constant(contexts[:1]))  # one short window: trimmed below 24
        every = answer(tf.constant(questions), tf.constant(contexts))
        answers[trim] = [{k: v.numpy() for k, v in out.items()} for out in (short, every)]
    assert seen == [False, False, True, True]  # one trace per batch size
    for padded, trimmed in zip(answers[False], answers[True], strict=True):
        assert padded["answer"].tolist() == trimmed["answer"].tolist()
        np.testing.assert_array_equal(padded["start"], trimmed["start"])
        np.testing.assert_allclose(padded["score"], trimmed["score"], rtol=1e-4, atol=1e-4)


def kbuild_spec(run):
    import kbuild

    return kbuild.load_spec(run / "spec.yaml")


def test_export_answers_with_exact_spans_in_a_fresh_process_for_short_and_long_contexts(qa_run):
    _, version = qa_run
    long_context = " ".join(["the weather was fine and people walked."] * 400) + " Carol lives in Oslo. The end."
    rows = [("Where does Bob live?", "the weather was fine. Bob lives in Lima. people walked."),
            ("Who lives in Oslo?", long_context),
            ("Who?", "Ålice ünd Bøb — 北京 lives in Rome.")]
    script = textwrap.dedent(f"""
        import json, tensorflow as tf, tensorflow_text
        serve = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        assert sorted(serve.structured_input_signature[1]) == ["context", "question"]
        rows = json.loads({json.dumps(rows)!r})
        out = serve(question=tf.constant([q for q, _ in rows]), context=tf.constant([c for _, c in rows]))
        print(json.dumps({{"answer": [a.decode() for a in out["answer"].numpy()], "start": out["start"].numpy().tolist(),
                          "end": out["end"].numpy().tolist(), "score": out["score"].numpy().tolist()}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for i, (_, context) in enumerate(rows):
        start, end, answer = out["start"][i], out["end"][i], out["answer"][i]
        assert answer and 0 <= start < end <= len(context) and context[start:end] == answer
    assert all(isinstance(s, float) for s in out["score"])


def test_predict_reads_json_lines_of_question_and_context(qa_run, tmp_path):
    from click.testing import CliRunner

    from kbuild.cli import cli

    run, _ = qa_run
    context = "the weather was fine. Dave lives in Cairo. people walked."
    lines = tmp_path / "in.jsonl"
    lines.write_text(json.dumps({"question": "Where does Dave live?", "context": context}) + "\n")
    result = CliRunner().invoke(cli, ["predict", str(run), "--input", str(lines)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["question"] == "Where does Dave live?" and row["context"] == context
    assert context[row["start"]:row["end"]] == row["answer"]


def test_serve_answers_rows_and_columns_of_question_and_context(qa_run):
    from starlette.testclient import TestClient

    from kbuild.serve import ServerSettings, create_app, load_repository

    _, version = qa_run
    context = "people walked. Erin lives in Tokyo. the weather was fine."
    with TestClient(create_app(load_repository(version.parent.parent), ServerSettings())) as client:
        rows = client.post("/v1/models/qa:predict", json={"instances": [{"question": "Where does Erin live?", "context": context}]})
        columns = client.post("/v1/models/qa:predict", json={"inputs": {"question": ["Who lives in Tokyo?"], "context": [context]}})
    assert rows.status_code == 200 and columns.status_code == 200, (rows.text, columns.text)
    for answer in (rows.json()["predictions"][0], _first_column_row(columns.json()["outputs"])):
        assert context[answer["start"]:answer["end"]] == answer["answer"]


def _first_column_row(outputs: dict) -> dict:
    """The first example of a columnar TF Serving answer (`{"outputs": {name: [values]}}`)."""
    return {name: values[0] for name, values in outputs.items()}


def test_bucketing_pads_each_window_batch_to_its_own_length_and_keeps_the_answers_inside(tmp_path):
    """SQuAD windows are mostly far shorter than max_length (a paragraph is about 150 pieces of
    384): under `preprocess.bucketing` a train batch is padded to its bucket, not to 384."""
    import kbuild
    from kbuild.names import SEGMENT_IDS, TOKEN_IDS
    from kbuild.tasks.bundle import build

    squad_file(tmp_path / "train.json")
    spec_text = SPEC.format(train=tmp_path / "train.json").replace("max_length: 24", "max_length: 96")
    (tmp_path / "spec.yaml").write_text(spec_text + "\n")
    spec = kbuild.load_spec(tmp_path / "spec.yaml")
    spec.preprocess.bucketing = True
    bundle = build(spec)
    lengths = set()
    for features, spans in bundle.datasets["train"]:
        length = int(features[TOKEN_IDS].shape[1])
        lengths.add(length)
        assert features[SEGMENT_IDS].shape == features[TOKEN_IDS].shape
        assert int(spans.numpy().max()) < length
    assert len(lengths) > 1 and min(lengths) < 96 and max(lengths) <= 96
