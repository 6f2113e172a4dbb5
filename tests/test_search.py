"""`kbuild tune`: the search: section, parameter paths checked like --set, the study in the search
folder, pruning, workers, resume, and the output files `kbuild report` reads.

The fast tests need no training. The end-to-end ones run real trials, each a fresh process with
TensorFlow (10-30 s apiece on a busy 2-core machine), so they are marked slow.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
from click.testing import CliRunner

from kbuild import load_spec
from kbuild.cli import cli
from kbuild.errors import KbuildError, SpecError
from kbuild.search.runner import create_search, recover, resume_search, run_search
from kbuild.search.study import open_search_folder, open_study
from kbuild.spec.loader import apply_overrides
from kbuild.spec.search import SearchSpec
from kbuild.spec.search_algorithms import SAMPLERS, build_sampler
from kbuild.spec.search_paths import WITHOUT_SEARCH, override, trial_overrides
from kbuild.spec.source import Located
from tests.conftest import REPO, TINY_SPEC

SEARCH = """\
search:
  metric: val_loss
  trials: 3
  sampler: random
  pruner: median
  pruner_startup_trials: 1
  parameters:
    train.optimizer.learning_rate: {space: loguniform, lower: 1.0e-8, upper: 1.0e-1}
    model.head.hidden: {space: choice, values: [[], [8]]}
"""


def _search_spec(write_spec, search: str = SEARCH, base: str = TINY_SPEC, name: str = "search.yaml"):
    write_spec(base, "tiny.yaml")
    return write_spec("extends: tiny.yaml\n" + search, name)


def _validate(path):
    return CliRunner().invoke(cli, ["validate", str(path)])


# --- the spec section -----------------------------------------------------------------------

def test_shipped_search_spec_validates():
    result = _validate(REPO / "specs" / "sst2_bilstm_search.yaml")
    assert result.exit_code == 0, result.output
    spec = load_spec(REPO / "specs" / "sst2_bilstm_search.yaml")
    assert spec.search.goal == "maximize" and len(spec.search.parameters) == 7


def test_unknown_parameter_path_is_a_located_error_with_a_suggestion(write_spec):
    path = _search_spec(write_spec, SEARCH.replace("model.head.hidden", "model.head.hiden"))
    result = _validate(path)
    assert result.exit_code == 2
    # line 10 of search.yaml (the extends: line comes first), column 5: the parameter's key
    assert f'{path}:10:5: search.parameters.model.head.hiden: unknown key "hiden" (did you mean "hidden"?)' \
        in result.output, result.output


def test_values_a_field_rejects_are_errors_naming_the_bound(write_spec):
    path = _search_spec(write_spec, SEARCH + """\
    train.batch_size: {space: int, lower: 0, upper: 64, step: 32}
    model.pooling: {space: choice, values: [mean, maxx]}
    model.blocks.0.heads: {space: choice, values: [2, 3]}
    model.blocks.4.heads: {space: int, lower: 1, upper: 4}
    model.embedding.dim: {space: choice, values: [16, 15]}
""")
    output = _validate(path).output
    assert "search.parameters.train.batch_size: lower 0 is rejected: Input should be greater than or equal to 1" in output
    assert "search.parameters.model.pooling: value 'maxx' is rejected: expected one of:" in output
    # cross-field checks: 3 heads do not divide the embedding size 16, nor 2 heads a size of 15
    assert "search.parameters.model.blocks.0.heads: value 3 is rejected: Expected `heads` to divide the embedding size (16)" in output
    assert ("search.parameters.model.embedding.dim: value 15 is rejected: model.blocks.0.heads: Expected `heads` "
            "to divide the embedding size (15)") in output
    assert "search.parameters.model.blocks.4.heads: list index 4 is out of range" in output
    assert "value 2" not in output and "value 'mean'" not in output  # accepted values are not errors


def test_space_fields_are_checked_with_their_own_keys(write_spec):
    path = _search_spec(write_spec, SEARCH + """\
    model.embedding.dropout: {space: uniform, lower: 0.5, upper: 0.1}
    train.epochs: {space: integer, lower: 1, upper: 2}
""")
    output = _validate(path).output
    assert "search.parameters.model.embedding.dropout: expected lower < upper; received lower=0.5, upper=0.1" in output
    assert ("search.parameters.train.epochs.space: unknown space 'integer' (did you mean \"int\"?); expected one of: uniform, "
            "loguniform, int, choice") in output


def test_search_selects_on_validation_metrics_and_needs_a_goal(write_spec):
    output = _validate(_search_spec(write_spec, SEARCH.replace("val_loss", "accuracy"))).output
    assert "search.metric: select on the validation split: expected a val_ metric" in output
    output = _validate(_search_spec(write_spec, SEARCH.replace("val_loss", "val_accuracy"))).output
    assert "search.metric: say whether to maximize or minimize val_accuracy" in output


def test_a_spec_without_search_resolves_as_before(tiny_spec_file, write_spec):
    assert "search" not in load_spec(tiny_spec_file).resolved()  # same spec.yaml, same spec hash
    assert load_spec(_search_spec(write_spec)).resolved()["search"]["trials"] == 3


def test_grid_sampler_needs_finite_spaces(write_spec):
    output = _validate(_search_spec(write_spec, SEARCH.replace("random", "grid"))).output
    assert "search.sampler: grid needs a finite set of values per parameter; give a step (or use choice) " \
           "for: train.optimizer.learning_rate" in output


def test_every_registered_pruner_and_installed_sampler_builds():
    import importlib.util

    from kbuild.spec.search_algorithms import PRUNERS, build_pruner

    search = SearchSpec.model_validate({"metric": "val_loss", "parameters": {
        "seed": {"space": "int", "lower": 1, "upper": 3}, "model.pooling": {"space": "choice", "values": ["mean", "max"]}}})
    for name in PRUNERS.names():
        assert isinstance(build_pruner(search.model_copy(update={"pruner": name}), 3), optuna.pruners.BasePruner)
    for name, entry in SAMPLERS.items():
        if all(importlib.util.find_spec(p) for p in entry.requires):
            sampler = build_sampler(search.model_copy(update={"sampler": name}), 0)
            assert isinstance(sampler, optuna.samplers.BaseSampler)
    assert search.grid_size() == 6


def test_a_sampler_whose_package_is_missing_is_a_clear_error():
    missing = [name for name, entry in SAMPLERS.items()
               if any(__import__("importlib").util.find_spec(p) is None for p in entry.requires)]
    if not missing:
        pytest.skip("every sampler's packages are installed here")
    search = SearchSpec.model_validate({"sampler": missing[0], "parameters": {"seed": {"space": "int", "lower": 1, "upper": 3}}})
    with pytest.raises(KbuildError, match=f"search.sampler {missing[0]} needs the Python package"):
        build_sampler(search, 0)


@pytest.mark.parametrize("value", [1e-4, 0.1, 3, "mean", "yes", "1e-3", None, True, [], [64, 32], {"a": 1, "b": [2]}])
def test_override_text_parses_back_to_the_value_through_the_set_path(value):
    located = Located({"x": {"y": 0}})
    assert apply_overrides(located, [override("x.y", value)]) == []
    assert located.data["x"]["y"] == value


def test_stepped_floats_are_set_without_binary_noise():
    search = SearchSpec.model_validate({"metric": "val_loss", "parameters": {
        "model.head.dropout": {"space": "uniform", "lower": 0.0, "upper": 0.5, "step": 0.1}}})
    assert trial_overrides(search, {"model.head.dropout": 0.1 * 3})[0] == "model.head.dropout=0.3"
    assert search.parameters["model.head.dropout"].grid() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_trial_overrides_are_the_spec_plus_set_without_its_search(write_spec):
    path = _search_spec(write_spec)
    spec = load_spec(path)
    overrides = trial_overrides(spec.search, {"train.optimizer.learning_rate": 0.003, "model.head.hidden": "[8]"})
    assert overrides[-1] == WITHOUT_SEARCH
    trial = load_spec(path, overrides)
    assert trial.search is None and trial.train.optimizer.learning_rate == 0.003 and trial.model.head.hidden == [8]


# --- the study and its outputs, without training ----------------------------------------------

def _finished_trial(number_params: dict, value: float, state=optuna.trial.TrialState.COMPLETE, **attrs):
    distributions = {
        "train.optimizer.learning_rate": optuna.distributions.FloatDistribution(1e-8, 1e-1, log=True),
        "model.head.hidden": optuna.distributions.CategoricalDistribution(["[]", "[8]"]),
    }
    return optuna.trial.create_trial(params=number_params, distributions=distributions, value=value, state=state,
                                     intermediate_values={1: value}, user_attrs=attrs)


def test_output_files_follow_the_report_contract(write_spec, tmp_path):
    folder = create_search(_search_spec(write_spec), run_dir=tmp_path / "search")
    spec = load_spec(folder.read_meta()["spec"])
    study = open_study(folder, spec)
    study.add_trial(_finished_trial({"train.optimizer.learning_rate": 1e-3, "model.head.hidden": "[8]"}, 0.60,
                                    epochs=3, test={"accuracy": 0.7}, valid={"loss": 0.60}))
    study.add_trial(_finished_trial({"train.optimizer.learning_rate": 1e-6, "model.head.hidden": "[]"}, 0.69,
                                    state=optuna.trial.TrialState.PRUNED, epochs=1))
    study.add_trial(_finished_trial({"train.optimizer.learning_rate": 1e-2, "model.head.hidden": "[]"}, 0.65, epochs=3))
    from kbuild.search.output import write_outputs

    summary = write_outputs(folder, study, spec)
    meta = json.loads(folder.meta.read_text())
    assert {"metric", "goal", "spec", "sampler", "pruner", "seed", "trials"} <= meta.keys()
    assert (meta["metric"], meta["goal"], meta["sampler"], meta["seed"]) == ("val_loss", "minimize", "random", 7)
    rows = list(csv.reader((folder.path / "trials.csv").open()))
    assert rows[0] == ["number", "state", "value", "duration_s", "params.train.optimizer.learning_rate",
                       "params.model.head.hidden"]
    assert [r[:2] for r in rows[1:]] == [["0", "COMPLETE"], ["1", "PRUNED"], ["2", "COMPLETE"]]
    assert rows[1][5] == "[8]" and rows[2][5] == "[]"
    importances = json.loads((folder.path / "importances.json").read_text())
    assert set(importances) == {"train.optimizer.learning_rate", "model.head.hidden"}
    # lowest val_loss among COMPLETE trials wins (the pruned one's 0.69 never could)
    assert summary.best.number == 0
    best = json.loads((folder.path / "best.json").read_text())
    assert best["params"] == {"train.optimizer.learning_rate": 1e-3, "model.head.hidden": [8]}
    assert best["test"] == {"accuracy": 0.7}
    # no trial folder here (as for a trial run on another machine): best.yaml is resolved from the overrides
    retrain = load_spec(folder.path / "best.yaml")
    assert retrain.search is None and retrain.model.head.hidden == [8] and retrain.train.optimizer.learning_rate == 1e-3
    table = (folder.path / "trials.md").read_text()
    assert "| 1 | PRUNED | 0.6900 |" in table and "Its test metrics, reported only: accuracy 0.7000" in table
    shown = CliRunner().invoke(cli, ["tune", "--show", str(folder.path)])
    assert shown.exit_code == 0 and "| 0 | COMPLETE | 0.6000 |" in shown.output and "Parameter importances" in shown.output


def test_resume_fails_stale_trials_and_queues_interrupted_ones_again(write_spec, tmp_path):
    folder = create_search(_search_spec(write_spec), run_dir=tmp_path / "search")
    spec = load_spec(folder.read_meta()["spec"])
    study = open_study(folder, spec)
    stale = study.ask()
    stale.suggest_float("train.optimizer.learning_rate", 1e-8, 1e-1, log=True)
    stale.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # a pid no process has
    assert recover(folder, study) == 1
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state == optuna.trial.TrialState.FAIL and trials[0].user_attrs["interrupted"]
    assert trials[1].state == optuna.trial.TrialState.WAITING and trials[1].user_attrs["retry_of"] == 0
    assert recover(folder, study) == 0  # queued once only
    from kbuild.search.runner import _counted

    assert _counted(study.get_trials(deepcopy=False)) == 0  # neither uses up the budget


def test_pruning_callback_stops_training_when_the_pruner_says_so():
    import keras
    import numpy as np

    from kbuild.search.trial import pruning_callback

    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0},
                                              distributions={}, params={}))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((16, 4), "float32"), np.full((16, 1), 5.0, "float32")
    callback = pruning_callback(study.ask(), "val_loss")
    history = model.fit(x, y, validation_data=(x, y), epochs=4, verbose=0, callbacks=[callback])
    assert callback.pruned_at == 1 and len(history.history["loss"]) == 1  # stopped after 1 of 4 epochs
    with pytest.raises(KbuildError, match="search.metric 'val_acc' is not among"):
        model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[pruning_callback(study.ask(), "val_acc")])


# --- end to end: real trials in their own processes ---------------------------------------------

def _states(folder) -> dict[int, str]:
    return {int(r["number"]): r["state"] for r in csv.DictReader((folder.path / "trials.csv").open())}


@pytest.mark.slow
def test_search_prunes_a_bad_trial_early_and_goes_on_after_a_crash(write_spec, tmp_path):
    spec_path = _search_spec(write_spec, """\
search:
  metric: val_loss
  trials: 3
  sampler: random
  pruner: median
  pruner_startup_trials: 1
  parameters:
    train.optimizer.learning_rate: {space: loguniform, lower: 1.0e-8, upper: 1.0e-1}
    train.class_weight: {space: choice, values: [null, {no_such_label: 2.0}]}
""", base=TINY_SPEC.replace("epochs: 1", "epochs: 3").replace("  max_steps: 4\n", "").replace("limit: 256", "limit: 1024"))
    folder = create_search(spec_path, run_dir=tmp_path / "search")
    study = open_study(folder, load_spec(spec_path))
    # same seed, so the same initial weights: at 1e-8 the loss stays where it starts, at 5e-3 it falls
    study.enqueue_trial({"train.optimizer.learning_rate": 5e-3, "train.class_weight": None})
    study.enqueue_trial({"train.optimizer.learning_rate": 1e-8, "train.class_weight": None})
    study.enqueue_trial({"train.optimizer.learning_rate": 5e-3, "train.class_weight": '{"no_such_label":2.0}'})
    summary = run_search(folder)
    assert _states(folder) == {0: "COMPLETE", 1: "PRUNED", 2: "FAIL"}
    epochs = [len((folder.trial_dir(n) / "metrics.jsonl").read_text().splitlines()) for n in (0, 1)]
    assert epochs == [3, 1]  # the pruned trial stopped after its first epoch
    assert "no_such_label" in summary.rows[2].attrs["error"]
    assert summary.best.number == 0
    assert (folder.path / "best.yaml").read_text() == (folder.trial_dir(0) / "spec.yaml").read_text()
    assert CliRunner().invoke(cli, ["validate", str(folder.path / "best.yaml")]).exit_code == 0
    results = json.loads((folder.trial_dir(0) / "results.json").read_text())
    assert summary.best.value == pytest.approx(results["metrics"]["valid"]["loss"])  # selected on valid
    assert summary.best.attrs["test"] == results["metrics"]["test"]  # test reported beside it
    assert all(r.attrs["rss_peak_mib"] > 0 for r in summary.rows)


@pytest.mark.slow
def test_two_workers_share_the_study_without_duplicating_or_losing_trials(write_spec, tmp_path):
    spec_path = _search_spec(write_spec, SEARCH.replace("trials: 3", "trials: 4").replace("pruner: median", "pruner: none"))
    result = CliRunner().invoke(cli, ["tune", str(spec_path), "--workers", "2", "--run-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    folder = open_search_folder(tmp_path / "s")
    assert _states(folder) == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE", 3: "COMPLETE"}
    assert sorted(p.name for p in folder.trials.iterdir()) == ["0", "1", "2", "3"]
    assert all((folder.trial_dir(n) / "results.json").is_file() for n in range(4))
    trials = open_study(folder, load_spec(spec_path)).get_trials()
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers trained
    assert len({t.params["train.optimizer.learning_rate"] for t in trials}) == 4  # no repeated draws


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_finishes_the_budget(write_spec, tmp_path):
    spec_path = _search_spec(write_spec, SEARCH.replace("trials: 3", "trials: 2").replace("pruner: median", "pruner: none"),
                             base=TINY_SPEC.replace("epochs: 1", "epochs: 20").replace("max_steps: 4", "max_steps: 200"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tune = subprocess.Popen([sys.executable, "-m", "kbuild.cli", "tune", str(spec_path), "--run-dir", str(tmp_path / "s")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = tmp_path / "s" / "trials" / "0" / "metrics.jsonl"
    deadline = time.time() + 240
    while not (metrics.is_file() and metrics.read_text().strip()) and time.time() < deadline and tune.poll() is None:
        time.sleep(0.5)
    assert metrics.is_file(), tune.communicate()
    os.killpg(tune.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, stderr = tune.communicate(timeout=180)
    assert tune.returncode == 130, stderr
    assert "kbuild tune --resume" in stderr
    folder = open_search_folder(tmp_path / "s")
    assert _states(folder) == {0: "FAIL"}
    interrupted = open_study(folder, load_spec(spec_path)).trials[0]
    assert interrupted.user_attrs["interrupted"] and (folder.trial_dir(0) / "checkpoints").is_dir()

    resumed_folder, summary = resume_search(folder.path)
    states = _states(resumed_folder)
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}  # 2 counted trials, the cut one re-run
    retried = open_study(folder, load_spec(spec_path)).trials[1]
    assert retried.user_attrs["retry_of"] == 0 and retried.params == interrupted.params


@pytest.mark.slow
def test_a_metric_no_epoch_reports_stops_the_search_after_one_trial(write_spec, tmp_path):
    spec_path = _search_spec(write_spec, SEARCH.replace("metric: val_loss", "metric: val_acuracy\n  goal: maximize"))
    result = CliRunner().invoke(cli, ["tune", str(spec_path), "--run-dir", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert ("search stopped at trial 0: search.metric 'val_acuracy' is not among this task's epoch metrics "
            '(did you mean "val_accuracy"?)') in result.output
    assert _states(open_search_folder(tmp_path / "s")) == {0: "FAIL"}  # not three failed trials


def test_tune_needs_exactly_one_of_spec_resume_show(tmp_path):
    result = CliRunner().invoke(cli, ["tune"])
    assert result.exit_code == 2 and "exactly one of SPEC, --resume DIR or --show DIR" in result.output
    result = CliRunner().invoke(cli, ["tune", "--show", str(tmp_path)])
    assert result.exit_code == 2 and "not a search folder" in result.output


def test_a_spec_without_search_section_is_refused(tiny_spec_file):
    with pytest.raises(SpecError, match="the spec has no search: section"):
        create_search(tiny_spec_file)
