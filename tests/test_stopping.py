"""Training length that follows the data (`epochs: auto`), the logged reason training stopped,
and early stopping that a `--resume` continues exactly."""

from __future__ import annotations

import pytest

from kbuild.errors import SpecError
from kbuild.spec import Spec
from kbuild.spec.train import TrainSpec
from kbuild.training.stopping import AUTO_PATIENCE, early_stopping_for, plan_epochs, step_budget
from tests.conftest import TINY_SPEC

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.training.optimizers import build_schedule, optimizer_updates  # noqa: E402


def test_auto_epochs_follow_the_train_size():
    auto = TrainSpec(epochs="auto")
    assert plan_epochs(auto, 67_349).epochs == 3  # SST-2: what its specs always trained
    assert plan_epochs(auto, 5_000).epochs == 40
    assert plan_epochs(auto, 1_000_000).epochs == 1
    tiny = plan_epochs(auto, 100)
    assert tiny.epochs == 50 and "capped at max_epochs 50" in tiny.reason
    assert plan_epochs(TrainSpec(epochs=7), 100).epochs == 7


def _fine_tuning(**train) -> Spec:
    return Spec.model_validate({"name": "ft", "task": "classification", "data": {"builtin": "sentiment"},
                                "model": {"backbone": {"from": "./checkpoint"}}, "train": {"epochs": "auto", **train}})


def test_auto_epochs_of_a_pretrained_backbone_follow_the_fine_tuning_budget():
    train = _fine_tuning().train
    assert plan_epochs(train, 67_349).epochs == 2  # SST-2: not the 3 of a from-scratch spec
    raised = plan_epochs(train, 1_000_000)
    assert raised.epochs == 2 and "raised to min_epochs 2" in raised.reason
    assert plan_epochs(train, 5_000).epochs == 20
    assert plan_epochs(train, 7_000).epochs == 15
    capped = plan_epochs(train, 1_000)
    assert capped.epochs == 20 and "capped at max_epochs 20" in capped.reason
    # The scratch budget is untouched by it.
    assert plan_epochs(TrainSpec(epochs="auto"), 1_000_000).epochs == 1


def test_a_pretrained_specs_own_budget_fields_win_over_the_fine_tuning_defaults():
    samples = _fine_tuning(epoch_budget={"samples": 20_000}).train.epoch_budget
    assert (samples.samples, samples.min_epochs, samples.max_epochs) == (20_000, 2, 20)
    one = _fine_tuning(epoch_budget={"max_epochs": 1}).train
    assert one.epoch_budget.min_epochs == 1 and plan_epochs(one, 500).epochs == 1
    many = _fine_tuning(epoch_budget={"min_epochs": 30}).train.epoch_budget
    assert (many.min_epochs, many.max_epochs) == (30, 30)
    # The run folder's spec.yaml (every field written out) loads as the same spec.
    spec = _fine_tuning(epoch_budget={"samples": 20_000}, schedule={"name": "linear", "warmup_ratio": 0.1})
    assert Spec.model_validate(spec.resolved()) == spec


def test_warmup_ratio_becomes_steps_of_the_runs_optimizer_updates():
    train = _fine_tuning(batch_size=32, schedule={"name": "linear", "warmup_ratio": 0.06}).train
    budget = step_budget(train, 67_349)
    assert budget.total_steps == 4_210 and budget.warmup_steps == 253  # ceil(0.06 x 4,210)
    assert "warmup 253 step(s) (warmup_ratio 0.06 of 4,210 optimizer steps)" in budget.describe()
    schedule = build_schedule(train.schedule, 1e-4, optimizer_updates(train, budget.total_steps))
    assert schedule.warmup_steps == 253 and schedule.total_steps == 4_210
    # With gradient accumulation the schedule counts updates, one per 4 batches; 0.1 x 30 stays 3.
    accumulated = TrainSpec(batch_size=10, epochs=1, gradient_accumulation=4,
                            schedule={"name": "constant", "warmup_ratio": 0.1})
    assert optimizer_updates(accumulated, 120) == 30 and step_budget(accumulated, 1_200).warmup_steps == 3
    assert build_schedule(accumulated.schedule, 1e-3, 30).warmup_steps == 3
    steps = TrainSpec(schedule={"name": "linear", "warmup_steps": 150})
    assert step_budget(steps, 640).warmup_steps == 150
    assert step_budget(steps, 640).describe().endswith("(train.epochs 3); warmup 150 step(s)")


def test_warmup_steps_and_warmup_ratio_together_are_a_located_spec_error(write_spec):
    path = write_spec(TINY_SPEC + "  schedule: {name: linear, warmup_steps: 10, warmup_ratio: 0.1}\n")
    with pytest.raises(SpecError) as info:
        kbuild.load_spec(path)
    (issue,) = info.value.issues
    assert issue.key == "train.schedule.warmup_ratio" and issue.line == TINY_SPEC.count("\n") + 1
    assert "give warmup_steps or warmup_ratio, not both" in issue.message


def test_auto_epochs_stop_early_on_the_monitor_unless_told_otherwise():
    implied = early_stopping_for(TrainSpec(epochs="auto", monitor="val_accuracy"))
    assert implied.monitor == "val_accuracy" and implied.patience == AUTO_PATIENCE
    given = TrainSpec(epochs="auto", early_stopping={"monitor": "val_loss", "patience": 5})
    assert early_stopping_for(given).patience == 5
    assert early_stopping_for(TrainSpec(epochs=3)) is None


def test_early_stopping_without_a_monitor_stops_on_the_specs_monitor(write_spec):
    """A seq2seq spec that selects on `val_rougeL` and sets only a patience stops on ROUGE-L too
    (specs/csl_char.yaml stopped on val_loss while its monitor still rose, before this)."""
    text = TINY_SPEC.replace("  max_steps: 4\n", "  max_steps: 4\n  monitor: val_accuracy\n  early_stopping: {patience: 3}\n")
    assert kbuild.load_spec(write_spec(text)).train.early_stopping.monitor == "val_accuracy"
    default = TINY_SPEC.replace("  max_steps: 4\n", "  max_steps: 4\n  early_stopping: {patience: 3}\n")
    spec = kbuild.load_spec(write_spec(default, "default.yaml"))
    assert spec.train.early_stopping.monitor == spec.train.monitor == "val_loss"


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
