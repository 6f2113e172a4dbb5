"""`eval.metrics` of a seq2seq run: spec checks, ROUGE in the results, and selection and early
stopping on `val_rougeL` computed from decoded text at every epoch end."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

import kbuild
from kbuild.cli import cli
from tests.test_seq2seq import _pairs, _write_parallel

SEQ2SEQ = """\
    name: s
    task: seq2seq
    data: {{train: t.en, format: parallel, target_suffix: .de}}
    model:
      blocks: [{{type: lstm, units: 8}}]
      decoder: {{type: lstm, units: 8}}
    {extra}
    """


def _validate(write_spec, *extra: str):
    text = SEQ2SEQ.format(extra="\n    ".join(extra))
    result = CliRunner().invoke(cli, ["validate", str(write_spec(text))])
    return result.exit_code, result.output


def test_rouge_metrics_and_a_val_rougel_monitor_validate(write_spec):
    code, output = _validate(write_spec, "eval: {metrics: [bleu, rouge]}", "train: {monitor: val_rougeL}")
    assert code == 0, output


def test_val_rougel_without_rouge_selected_names_the_metrics_the_run_logs(write_spec):
    code, output = _validate(write_spec, "train: {monitor: val_rougeL}")
    assert code == 2 and "train.monitor" in output and "logs no metric 'val_rougeL'" in output
    assert "val_bleu" in output  # the default eval metric is monitorable


def test_unknown_and_clashing_eval_metrics_are_spec_errors(write_spec):
    code, output = _validate(write_spec, "eval: {metrics: [rouge, roug, rouge_char]}")
    assert code == 2
    assert "eval.metrics.1" in output and "unknown metric 'roug' (did you mean \"rouge\"?)" in output
    assert "eval.metrics.2" in output and "rouge_char and rouge both report rouge1" in output


def test_eval_section_on_a_classifier_is_a_spec_error(write_spec):
    path = write_spec("""\
        name: c
        task: classification
        data: {train: t.tsv}
        eval: {metrics: [rouge]}
        """)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "only task seq2seq reads this field" in result.output


def test_a_run_without_eval_resolves_without_the_section(write_spec):
    from kbuild import load_spec

    spec = load_spec(write_spec(SEQ2SEQ.format(extra="")))
    assert "eval" not in spec.resolved()  # so older runs' spec hashes stay as they were


def test_decoded_scores_run_each_epoch_only_when_a_monitor_names_one(write_spec):
    from types import SimpleNamespace

    from kbuild import load_spec
    from kbuild.tasks import TASKS
    from kbuild.tasks.decoded_scores import DecodedScores

    bundle = SimpleNamespace(datasets={"train": None, "valid": None},
                             examples={"valid": [SimpleNamespace(text="a man", label="ein Mann .")]})
    task = TASKS.get("seq2seq")
    plain = load_spec(write_spec(SEQ2SEQ.format(extra="eval: {metrics: [rouge]}")))
    assert task.epoch_callbacks(plain, bundle) == []  # val_loss: no decoding every epoch
    stopping = "\n    ".join(["eval: {metrics: [rouge]}", "train: {early_stopping: {monitor: val_rougeL}}"])
    [callback] = task.epoch_callbacks(load_spec(write_spec(SEQ2SEQ.format(extra=stopping))), bundle)
    assert isinstance(callback, DecodedScores) and callback.prefix == "val_" and callback.references == ["ein Mann ."]


@pytest.mark.slow  # about a minute on 2 busy cores, most of it tracing the model and the decoder
def test_training_selects_on_val_rougel_of_decoded_summaries(tmp_path):
    train = _write_parallel(tmp_path, "train", _pairs(200, 1))
    valid = _write_parallel(tmp_path, "valid", _pairs(20, 2))
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-rouge
        task: seq2seq
        seed: 5
        data: {{format: parallel, train: {train}, valid: {valid}, test: {valid}, target_suffix: .de}}
        preprocess: {{tokenizer: {{type: word, lowercase: false}}, max_length: 10}}
        model:
          embedding: {{dim: 16, position: learned}}
          blocks: [{{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32, dropout: 0.0}}]
          decoder: {{type: transformer, layers: 1, heads: 2, ff_dim: 32, dropout: 0.0}}
        eval: {{metrics: [rouge]}}
        train:
          epochs: 3
          batch_size: 32
          jit_compile: false  # no execution probe: this test is about what the epochs log
          steps_per_execution: 1
          optimizer: {{name: adam, learning_rate: 0.01}}
          monitor: val_rougeL
          early_stopping: {{patience: 5}}
        """))
    result = CliRunner().invoke(cli, ["train", str(spec), "--run-dir", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all({"val_rouge1", "val_rouge2", "val_rougeL"} <= set(epoch) for epoch in epochs), epochs
    resolved = (tmp_path / "run" / "spec.yaml").read_text()
    assert "monitor: val_rougeL" in resolved  # early stopping follows train.monitor
    test = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]["test"]
    assert {"rouge1", "rouge2", "rougeL"} <= set(test) and "bleu" not in test
    # The saved model is the epoch with the best val_rougeL: the valid split is the test split here.
    assert test["rougeL"] == pytest.approx(max(epoch["val_rougeL"] for epoch in epochs), abs=1e-6)
    # valid's final scores are the saved epoch's logs (no second decode), and equal a fresh evaluate.
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["scored_rows"]["valid"]["from_validation"] is True
    fresh = kbuild.evaluate(tmp_path / "run", split="valid")
    for name in ("loss", "token_accuracy", "rouge1", "rougeL"):
        assert fresh[name] == pytest.approx(results["metrics"]["valid"][name], rel=1e-4, abs=1e-6), name


def test_epoch_end_scoring_of_a_large_split_is_announced_and_timed(monkeypatch, capsys):
    from types import SimpleNamespace

    import kbuild.tasks.epoch_scores as epoch_scores

    class Counted(epoch_scores.EpochScores):
        def make_decoder(self):
            return len

        def scores(self, decoder):
            return {"rows": decoder(self.bundle.examples[self.split])}

    bundle = SimpleNamespace(examples={"valid": ["a"] * 600})
    logs = {}
    Counted(bundle, None, "valid").on_epoch_end(2, logs)
    assert logs == {"val_rows": 600.0}
    assert "epoch 3: scoring valid (600 rows) for its val_* metrics" in capsys.readouterr().err
    monkeypatch.setattr(epoch_scores, "LOUD_SECONDS", 0.0)
    Counted(SimpleNamespace(examples={"valid": ["a"] * 10}), None, "valid").on_epoch_end(0, {})
    err = capsys.readouterr().err
    assert "scoring valid" not in err and "epoch 1: scored valid in " in err
