"""spec -> train -> evaluate -> export -> predict, through the API, the CLI and a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.conftest import REPO, TINY_SPEC

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.prediction import load_predictor  # noqa: E402

SENTENCES = ["a wonderful , moving film", "a dull and tedious mess", "not good at all", "brilliant acting but awful plot"]


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests of this module (about ten seconds on 2 cores)."""
    folder = tmp_path_factory.mktemp("e2e")
    spec_path = folder / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    run_dir = folder / "run"
    result = _cli("train", spec_path, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    return spec_path, run_dir


def test_train_writes_the_run_folder(trained):
    _, run = trained
    for name in ("spec.yaml", "model.keras", "metrics.jsonl", "results.json", "assets", "checkpoints", "logs"):
        assert (run / name).exists(), name
    results = json.loads((run / "results.json").read_text())
    assert set(results["metrics"]) == {"train", "valid", "test"}
    assert {"accuracy", "macro_f1", "loss"} <= set(results["metrics"]["valid"])
    for key in ("samples_per_second", "wall_time_s", "device", "strategy", "spec_hash"):
        assert results[key] is not None, key
    assert results["labels"] == ["negative", "positive"]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 1 and "val_loss" in epochs[0] and "learning_rate" in epochs[0]
    resolved = kbuild.load_spec(run / "spec.yaml")
    assert resolved.train.max_steps == 4 and resolved.model.blocks[0].ff_dim == 32


def test_evaluate_reuses_assets_and_matches_results(trained):
    _, run = trained
    result = _cli("evaluate", run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    recorded = json.loads((run / "results.json").read_text())["metrics"]["test"]
    assert metrics["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)


def test_export_serves_raw_strings_in_a_fresh_process_equal_to_in_process(trained, tmp_path):
    _, run = trained
    out = tmp_path / "export"
    assert _cli("export", run, "--out", out).exit_code == 0
    out = out / "1"  # TF Serving's layout: one numbered folder per version
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["labels"] == ["negative", "positive"] and metadata["task"] == "classification"
    assert metadata["signature"]["serving_default"]["outputs"] == ["label", "probabilities"]

    in_process = list(load_predictor(run).predict(SENTENCES))
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # registers tf-text ops; nothing else is imported
        serve = tf.saved_model.load({str(out)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({SENTENCES!r}))
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.")]
        print(json.dumps({{"probabilities": out["probabilities"].numpy().tolist(),
                          "label": [l.decode() for l in out["label"].numpy()]}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = [[row["probabilities"][label] for label in ("negative", "positive")] for row in in_process]
    np.testing.assert_allclose(fresh["probabilities"], expected, atol=1e-5)
    assert fresh["label"] == [row["label"] for row in in_process]


def test_each_export_adds_the_next_version_and_leaves_no_staging_folder(trained, tmp_path):
    _, run = trained
    out = tmp_path / "export"
    (out / "notes").mkdir(parents=True)  # a non-numbered folder is neither a version nor counted
    first, second = kbuild.export(run, out), kbuild.export(run, out)
    assert (first, second) == (out / "1", out / "2")
    assert (second / "saved_model.pb").is_file() and (second / "metadata.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["1", "2", "notes"]


def test_a_failed_export_leaves_no_version_behind(trained, tmp_path, monkeypatch):
    from kbuild.exporter import savedmodel

    _, run = trained
    out = tmp_path / "export"
    kbuild.export(run, out)

    def crash(*args, **kwargs):  # the graph is written, then the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(savedmodel, "write_metadata", crash)
    with pytest.raises(OSError, match="disk full"):
        kbuild.export(run, out)
    assert sorted(p.name for p in out.iterdir()) == ["1"]


def test_export_refuses_an_unversioned_savedmodel_folder(trained, tmp_path):
    _, run = trained
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "saved_model.pb").write_bytes(b"")
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path / "old")])
    assert result.exit_code == 2 and "unversioned SavedModel" in result.output


def test_predict_takes_a_model_folder_or_one_version_folder(trained, tmp_path):
    _, run = trained
    out = tmp_path / "export"
    kbuild.export(run, out)
    kbuild.export(run, out)
    expected = list(load_predictor(run).predict(SENTENCES))
    for path in (out, out / "1"):
        rows = list(load_predictor(path).predict(SENTENCES))
        assert [r["label"] for r in rows] == [r["label"] for r in expected]
        for got, want in zip(rows, expected, strict=True):
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_predict_cli_reads_stdin_and_writes_json_lines(trained, tmp_path):
    _, run = trained
    result = CliRunner().invoke(cli, ["predict", str(run), "--input", "-"], input="\n".join(SENTENCES) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["text"] for r in rows] == SENTENCES
    assert all(r["label"] in ("negative", "positive") for r in rows)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-4) for r in rows)


def test_same_seed_gives_the_same_loss(tiny_spec_file, tmp_path):
    losses = []
    for i in range(2):
        run = kbuild.train(kbuild.load_spec(tiny_spec_file, ["train.deterministic=true"]), run_dir=tmp_path / f"r{i}")
        losses.append(json.loads((run.path / "metrics.jsonl").read_text().splitlines()[0])["loss"])
    assert losses[0] == losses[1]


def test_every_epoch_runs_its_full_steps_with_bucketing(tiny_spec_file, tmp_path):
    # 100 rows / batch 8 = 13 steps per epoch, while a bucketed pass yields a few more batches
    # (one partial batch per bucket): a dataset that ran dry would cut epochs short.
    run = kbuild.train(kbuild.load_spec(tiny_spec_file, ["train.epochs=3", "train.max_steps=null", "data.limit=100",
                                                         "train.batch_size=8", "preprocess.bucketing=true"]),
                       run_dir=tmp_path / "r")
    epochs = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert run.results["steps"] == 3 * 13


def test_nan_loss_stops_with_exit_1_and_keeps_the_checkpoint(tiny_spec_file, tmp_path):
    run = tmp_path / "nan"
    result = _cli("train", tiny_spec_file, "--run-dir", run, "--set", "train.epochs=3",
                  "--set", "train.optimizer={name: sgd, learning_rate: 1.0e+38}", "--set", "train.max_steps=20")
    assert result.exit_code == 1
    assert "NaN or Inf" in result.output and "Traceback" not in result.output
    # It diverges inside the first epoch: no checkpoint and no model with Inf weights may be left.
    assert "nothing was saved" in result.output
    assert not (run / "model.keras").exists() and not list((run / "checkpoints").iterdir())


def test_public_api_names_stay_functions_after_every_module_is_imported():
    import importlib

    for module in ("kbuild.training.fit", "kbuild.exporter.savedmodel", "kbuild.evaluation", "kbuild.prediction"):
        importlib.import_module(module)
    for name in ("train", "export", "evaluate", "predict", "load_spec", "build_model"):
        assert callable(getattr(kbuild, name)), name


def test_missing_data_file_is_a_one_line_error_naming_the_file(write_spec, tmp_path):
    spec = write_spec(TINY_SPEC.replace("  builtin: sentiment\n", f"  train: {tmp_path}/nope.tsv\n"))
    result = _cli("train", spec, "--run-dir", tmp_path / "r")
    assert result.exit_code == 1
    assert "nope.tsv" in result.output and "Traceback" not in result.output


def test_label_only_in_valid_is_an_error(write_spec, tmp_path):
    (tmp_path / "train.tsv").write_text("text\tlabel\ngood film\tpos\nbad film\tneg\n")
    (tmp_path / "valid.tsv").write_text("text\tlabel\nok film\tmeh\n")
    spec = write_spec(TINY_SPEC.replace("  builtin: sentiment\n", f"  train: {tmp_path}/train.tsv\n  valid: {tmp_path}/valid.tsv\n"))
    result = _cli("train", spec, "--run-dir", tmp_path / "r")
    assert result.exit_code == 1
    assert "meh" in result.output and "valid.tsv:2" in result.output


def test_real_subprocess_cli_trains_exports_and_predicts(tmp_path, tiny_spec_file):
    kbuild_bin = [sys.executable, "-m", "kbuild.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = tmp_path / "run"
    subprocess.run([*kbuild_bin, "train", str(tiny_spec_file), "--run-dir", str(run), "--set", "model.blocks=[{type: gru, units: 8}]"],
                   check=True, capture_output=True, env=env, cwd=REPO)
    subprocess.run([*kbuild_bin, "export", str(run), "--out", str(tmp_path / "exp")], check=True, capture_output=True, env=env)
    proc = subprocess.run([*kbuild_bin, "predict", str(tmp_path / "exp"), "--input", "-"], input="a great film\n",
                          capture_output=True, text=True, env=env, check=True)
    assert json.loads(proc.stdout)["label"] in ("negative", "positive")


def test_bucketed_valid_and_test_score_as_the_padded_ones(tiny_spec_file, tmp_path):
    """Under preprocess.bucketing the valid and test batches are bucketed too (scored 2-3x faster on
    short texts); their metrics are order-free and padding is masked, so they equal the padded ones."""
    import keras

    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = kbuild.load_spec(tiny_spec_file, ["preprocess.bucketing=true", "preprocess.max_length=32"])
    run = kbuild.train(spec, run_dir=tmp_path / "run").path
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    bucketed = build(spec)
    assert len({int(x.shape[1]) for x, _ in bucketed.datasets["valid"]}) > 1
    spec.preprocess.bucketing = False
    padded = build(spec)
    assert {int(x.shape[1]) for x, _ in padded.datasets["valid"]} == {32}
    task = TASKS.get(spec.task)
    for split in ("valid", "test"):
        got, want = task.evaluate(model, bucketed, split, spec), task.evaluate(model, padded, split, spec)
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], atol=1e-5)
