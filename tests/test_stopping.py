"""Training length that follows the data (`epochs: auto`), the logged reason training stopped,
and early stopping that a `--resume` continues exactly."""

from __future__ import annotations

import pytest

from kbuild.spec.train import TrainSpec
from kbuild.training.stopping import AUTO_PATIENCE, early_stopping_for, plan_epochs

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402


def test_auto_epochs_follow_the_train_size():
    auto = TrainSpec(epochs="auto")
    assert plan_epochs(auto, 67_349).epochs == 3  # SST-2: what its specs always trained
    assert plan_epochs(auto, 5_000).epochs == 40
    assert plan_epochs(auto, 1_000_000).epochs == 1
    tiny = plan_epochs(auto, 100)
    assert tiny.epochs == 50 and "capped at max_epochs 50" in tiny.reason
    assert plan_epochs(TrainSpec(epochs=7), 100).epochs == 7


def test_auto_epochs_stop_early_on_the_monitor_unless_told_otherwise():
    implied = early_stopping_for(TrainSpec(epochs="auto", monitor="val_accuracy"))
    assert implied.monitor == "val_accuracy" and implied.patience == AUTO_PATIENCE
    given = TrainSpec(epochs="auto", early_stopping={"monitor": "val_loss", "patience": 5})
    assert early_stopping_for(given).patience == 5
    assert early_stopping_for(TrainSpec(epochs=3)) is None


# 400 rows, batch 8: 50 steps per epoch. min_delta 1.0: no epoch can beat the first, so patience 1
# ends an unbroken run at epoch 2.
COMMON = ["data.limit=400", "train.batch_size=8", "train.deterministic=true", "train.epochs=auto",
          "train.epoch_budget={samples: 2400}", "train.monitor=val_accuracy",
          "train.early_stopping={monitor: val_accuracy, patience: 1, min_delta: 1.0}"]


def test_the_reason_training_stopped_is_logged_and_recorded(tiny_spec_file, tmp_path, capsys):
    budget = kbuild.train(kbuild.load_spec(tiny_spec_file), run_dir=tmp_path / "budget")
    assert budget.results["stop_reason"] == "step budget reached: train.max_steps 4"
    patience = kbuild.train(kbuild.load_spec(tiny_spec_file, [*COMMON, "train.max_steps=null"]), run_dir=tmp_path / "es")
    assert patience.results["stop_reason"].startswith("patience exhausted at epoch 2: val_accuracy has not improved")
    assert "[kbuild] stopped: patience exhausted at epoch 2" in capsys.readouterr().err
    epochs = kbuild.train(kbuild.load_spec(tiny_spec_file, ["train.max_steps=null", "data.limit=64"]), run_dir=tmp_path / "e")
    assert epochs.results["stop_reason"] == "epoch budget reached: 1 epoch(s) (train.epochs 1)"


@pytest.mark.slow
def test_resume_continues_early_stopping_where_it_was(tiny_spec_file, tmp_path):
    whole = kbuild.train(kbuild.load_spec(tiny_spec_file, [*COMMON, "train.max_steps=null"]), run_dir=tmp_path / "whole")
    assert whole.results["steps"] == 100
    # Interrupted after epoch 1, then resumed: a fresh early-stopping count would take epoch 2
    # as its first best and stop only at epoch 3 (150 steps).
    kbuild.train(kbuild.load_spec(tiny_spec_file, [*COMMON, "train.max_steps=50"]), run_dir=tmp_path / "part")
    resumed = kbuild.train(kbuild.load_spec(tiny_spec_file, [*COMMON, "train.max_steps=null"]),
                           run_dir=tmp_path / "part", resume=True)
    assert resumed.results["resumed_at_step"] == 50 and resumed.results["steps"] == 100
    assert resumed.results["stop_reason"] == whole.results["stop_reason"]
    assert resumed.results["metrics"]["valid"] == whole.results["metrics"]["valid"]
    # A run that early stopping had already ended trains no further when resumed.
    again = kbuild.train(kbuild.load_spec(tiny_spec_file, [*COMMON, "train.max_steps=null"]),
                         run_dir=tmp_path / "part", resume=True)
    assert again.results["steps"] == 100 and again.results["stop_reason"] == whole.results["stop_reason"]
