"""The final scores of a run: valid and test in full, train on a seeded sample (`eval.train_sample`),
recorded as such in results.json, `kbuild evaluate` and the report; the time after training recorded."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import TINY_SPEC


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    """The tiny spec with train scored on 50 of its rows."""
    import kbuild

    folder = tmp_path_factory.mktemp("sampled-run")
    spec_path = folder / "tiny.yaml"
    spec_path.write_text(TINY_SPEC + "eval: {train_sample: 50}\n")
    return kbuild.train(kbuild.load_spec(spec_path), run_dir=folder / "run").path


def test_results_record_the_train_sample_and_the_full_valid_and_test(sampled_run):
    results = json.loads((sampled_run / "results.json").read_text())
    scored = results["scored_rows"]
    assert scored["train"] == {"rows": 50, "of": results["counts"]["train"]}
    assert results["counts"]["train"] > 50
    for split in ("valid", "test"):
        assert scored[split]["rows"] == scored[split]["of"] == results["counts"][split]
    # valid's scores are the saved epoch's validation logs (test_evaluate_... checks the numbers).
    assert scored["valid"].get("from_validation") and "from_validation" not in scored["test"]
    assert 0 <= results["after_training_s"] < results["wall_time_s"]
    assert set(results["scoring_seconds"]) == {"train", "test"}  # valid: from the logs
    assert sum(results["scoring_seconds"].values()) <= results["after_training_s"] + 0.02  # each rounded
    assert results["epochs_planned"] == 1 and results["warmup_steps"] == 0 and "train.epochs 1" in results["epoch_plan"]


def test_evaluate_reads_the_same_sample_unless_told_otherwise(sampled_run):
    from kbuild.evaluation import evaluate

    results = json.loads((sampled_run / "results.json").read_text())
    sampled = evaluate(sampled_run, split="train")
    assert sampled["scored_rows"] == {"rows": 50, "of": results["counts"]["train"]}
    assert sampled["accuracy"] == pytest.approx(results["metrics"]["train"]["accuracy"], abs=1e-4)
    full = evaluate(sampled_run, split="train", train_sample="all")
    assert "scored_rows" not in full
    assert evaluate(sampled_run, split="valid") == pytest.approx(results["metrics"]["valid"], abs=1e-4)


def test_the_trained_model_is_scored_with_the_saved_weights_and_its_traces_kept(sampled_run):
    # Training passes its in-memory model to the final scores: whatever weights it holds after the
    # last step, the scores are model.keras's, and the evaluate function traced before serves again.
    import numpy as np

    from kbuild.runs import load_trained_model, open_run
    from kbuild.tasks.bundle import load_bundle
    from kbuild.tasks.checks import load_spec
    from kbuild.training.scoring import evaluate_splits

    folder = open_run(sampled_run)
    spec = load_spec(folder.spec)
    bundle = load_bundle(spec, folder.assets)
    fresh = evaluate_splits(folder, bundle, spec)
    trained = load_trained_model(folder)
    trained.evaluate(bundle.datasets["valid"], verbose=0)
    traced = trained.test_function
    trained.set_weights([np.zeros_like(weight) for weight in trained.get_weights()])
    reused = evaluate_splits(folder, bundle, spec, trained=trained)
    assert reused.metrics == fresh.metrics and reused.rows == fresh.rows
    saved = load_trained_model(folder).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), saved, strict=True))
    assert trained.test_function is traced


def test_the_cli_says_the_train_metrics_are_a_sample(sampled_run):
    from kbuild.cli import cli

    out = CliRunner().invoke(cli, ["evaluate", str(sampled_run), "--split", "train", "--train-sample", "20"])
    assert out.exit_code == 0, out.output
    assert "a seeded sample of 20 of" in out.output
    bad = CliRunner().invoke(cli, ["evaluate", str(sampled_run), "--split", "train", "--train-sample", "0"])
    assert bad.exit_code == 2 and "neither a positive number of rows nor 'all'" in bad.output


def test_the_report_labels_the_sampled_split(sampled_run):
    from kbuild.report.loader import load_run
    from kbuild.report.sections.common import metrics

    record = load_run(sampled_run)
    [section] = metrics(record)
    [table] = section.blocks
    labels = [row[0] for row in table.rows]
    assert f"train (sample of 50 of {record.results['counts']['train']:,} rows)" in labels
    assert "valid" in labels and "test" in labels


def test_the_sample_is_seeded_in_order_and_encoded_unshuffled(tiny_spec_file):
    import kbuild
    from kbuild.tasks.bundle import build, sample_split

    spec = kbuild.load_spec(tiny_spec_file)
    bundle = build(spec)
    train = bundle.examples["train"]
    first, again = sample_split(bundle, spec, "train", 30), sample_split(bundle, spec, "train", 30)
    picked = first.examples["train"]
    assert len(picked) == 30 and picked == again.examples["train"]
    positions = [train.index(example) for example in picked]
    assert positions == sorted(positions)
    assert sum(int(labels.shape[0]) for _, labels in first.datasets["train"]) == 30
    assert first.datasets["valid"] is bundle.datasets["valid"]
    spec.seed += 1
    assert sample_split(bundle, spec, "train", 30).examples["train"] != picked
    assert sample_split(bundle, spec, "train", len(train)) is bundle


@pytest.mark.parametrize("value, ok", [(2000, True), ("all", True), (0, True), (-1, False), ("some", False)])
def test_train_sample_values(value, ok):
    from pydantic import ValidationError

    from kbuild.spec.evaluation import EvalSpec

    if ok:
        assert EvalSpec(train_sample=value).train_sample == value
    else:
        with pytest.raises(ValidationError):
            EvalSpec(train_sample=value)


def test_any_task_may_set_the_train_sample_but_only_seq2seq_the_decoded_metrics(write_spec):
    import kbuild
    from kbuild.errors import SpecError

    kbuild.load_spec(write_spec(TINY_SPEC + "eval: {train_sample: all}\n"))
    with pytest.raises(SpecError, match="only task seq2seq reads this field"):
        kbuild.load_spec(write_spec(TINY_SPEC + "eval: {metrics: [rouge]}\n"))


def test_a_language_model_scores_one_unbroken_run_of_lines():
    from kbuild.tasks import TASKS

    picked = TASKS.get("language_model").sample_positions(1000, 40, seed=3)
    assert picked == list(range(picked[0], picked[0] + 40)) and 0 <= picked[0] <= 960
    assert TASKS.get("classification").sample_positions(1000, 40, seed=3) != picked


def test_train_sample_zero_leaves_train_unscored_but_evaluate_still_scores_it(tmp_path):
    import kbuild
    from kbuild.evaluation import evaluate

    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_SPEC + "eval: {train_sample: 0}\n")
    run = kbuild.train(kbuild.load_spec(spec_path), run_dir=tmp_path / "run").path
    results = json.loads((run / "results.json").read_text())
    assert "train" not in results["metrics"] and {"valid", "test"} <= set(results["metrics"])
    assert results["scored_rows"]["train"] == {"rows": 0, "of": results["counts"]["train"]}
    assert "accuracy" in evaluate(run, split="train")


@pytest.mark.parametrize(("task", "max_length", "rows"), [
    ("classification", 64, 128), ("classification", 128, 128), ("classification", 512, 32),
    ("tagging", 128, 128), ("seq2seq", 64, 32)])
def test_splits_only_scored_read_larger_batches_where_the_outputs_are_small(task, max_length, rows):
    from types import SimpleNamespace

    from kbuild.tasks import TASKS

    spec = SimpleNamespace(train=SimpleNamespace(batch_size=32), preprocess=SimpleNamespace(max_length=max_length))
    assert TASKS.get(task).scoring_batch_size(spec) == rows


def test_valid_and_test_batches_hold_the_scoring_batch(sampled_run):
    from kbuild.runs import open_run
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import load_bundle
    from kbuild.tasks.checks import load_spec

    folder = open_run(sampled_run)
    spec = load_spec(folder.spec)
    bundle = load_bundle(spec, folder.assets)
    rows = TASKS.get(spec.task).scoring_batch_size(spec)
    assert rows > spec.train.batch_size
    first = next(iter(bundle.datasets["valid"]))
    assert first[1].shape[0] == min(rows, len(bundle.examples["valid"]))


def test_a_run_whose_best_epoch_is_not_its_last_is_scored_with_the_saved_weights(tmp_path):
    # Epoch 2's weights are wrecked before its validation: model.keras keeps epoch 1's, and the
    # final scores must be epoch 1's, read from the model training left in memory after model.keras's
    # weights were loaded into it; results.json still counts every step trained.
    import json as json_lib

    import keras

    import kbuild
    from kbuild.evaluation import evaluate

    class Wreck(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and getattr(self, "epoch", 0) == 1 and batch == 0:
                self.model.set_weights([w * 50.0 for w in self.model.get_weights()])

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC.replace("epochs: 1", "epochs: 2").replace("max_steps: 4", "max_steps: 16")
                    + "eval: {train_sample: 50}\n")
    run = kbuild.train(kbuild.load_spec(path), run_dir=tmp_path / "run", callbacks=[Wreck()])
    epochs = [json_lib.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 2 and epochs[1]["val_loss"] > epochs[0]["val_loss"]
    assert run.results["steps"] == 16
    assert run.results["metrics"]["valid"]["loss"] == pytest.approx(epochs[0]["val_loss"], abs=1e-5)
    assert run.results["metrics"]["test"] == pytest.approx(evaluate(run.path, split="test"), abs=1e-5)
