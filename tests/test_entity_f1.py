"""`val_f1`: a tagger's conlleval entity F1 on valid at every epoch end, in metrics.jsonl and
TensorBoard, selecting model.keras and driving early stopping; the default monitor for tagging."""

from __future__ import annotations

import json
import textwrap

import pytest

from kbuild import load_spec
from tests.test_tagging_end_to_end import _conll

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402

TAGGER = """\
    name: tiny-tagger
    task: tagging
    seed: 3
    data: {{train: {folder}/train.txt, {valid}test: {folder}/test.txt, format: conll}}
    preprocess: {{tokenizer: {{type: whitespace}}, max_length: 8, tag_scheme: bioes}}
    model:
      embedding: {{dim: 16, position: none}}
      blocks: [{{type: bilstm, units: 16}}]
      head: {{type: crf}}
    train: {{epochs: {epochs}, batch_size: 8, optimizer: {{name: adam, learning_rate: 0.02}}{extra}}}
    """


def _spec(folder, valid=True, epochs=4, extra=""):
    (folder / "train.txt").write_text(_conll(48))
    (folder / "valid.txt").write_text(_conll(9))
    (folder / "test.txt").write_text(_conll(6))
    path = folder / "spec.yaml"
    path.write_text(textwrap.dedent(TAGGER.format(
        folder=folder, valid=f"valid: {folder}/valid.txt, " if valid else "", epochs=epochs, extra=extra)))
    return load_spec(path)


def _epochs(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("f1")
    return kbuild.train(_spec(folder), run_dir=folder / "run")


def test_tagging_selects_on_val_f1_by_default(tmp_path):
    spec = _spec(tmp_path, extra=", early_stopping: {patience: 2}")
    assert spec.train.monitor == "val_f1" and spec.train.early_stopping.monitor == "val_f1"
    explicit = _spec(tmp_path, extra=", monitor: val_loss")
    assert explicit.train.monitor == "val_loss"
    assert load_spec("specs/conll2003_bilstm_crf.yaml").train.monitor == "val_f1"


@pytest.mark.slow
def test_val_f1_is_logged_every_epoch_and_picks_the_saved_model(trained):
    epochs = _epochs(trained.path)
    assert len(epochs) == 4
    assert all(0.0 <= row["val_f1"] <= 1.0 and "val_precision" in row and "val_recall" in row for row in epochs)
    # model.keras is the epoch with the best val_f1, and evaluation scores valid the same way.
    best = max(row["val_f1"] for row in epochs)
    assert trained.results["metrics"]["valid"]["f1"] == pytest.approx(best, abs=1e-6)


@pytest.mark.slow
def test_val_f1_reaches_tensorboard(trained):
    events = b"".join(path.read_bytes() for path in (trained.path / "logs").rglob("*tfevents*"))
    assert b"epoch_f1" in events


@pytest.mark.slow
def test_early_stopping_reads_val_f1(tmp_path):
    # No later epoch can beat the first by 1.0, so patience 1 stops after epoch 2; were val_f1
    # missing from the logs, Keras would only warn and all 6 epochs would run.
    spec = _spec(tmp_path, epochs=6, extra=", early_stopping: {patience: 1, min_delta: 1.0}")
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    assert len(_epochs(run.path)) == 2


@pytest.mark.slow
def test_without_a_valid_split_train_f1_is_monitored(tmp_path):
    run = kbuild.train(_spec(tmp_path, valid=False, epochs=2), run_dir=tmp_path / "run")
    assert all("f1" in row and "val_f1" not in row for row in _epochs(run.path))
    assert (run.path / "model.keras").is_file()
