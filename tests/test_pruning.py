"""Magnitude pruning (`prune:`): the schedule, exact zeros after training and in the export, the
per-layer report, and the spec errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from kbuild.compression.pruning import Schedule, magnitude_masks
from kbuild.errors import SpecError
from kbuild.spec.compression import PruneSpec
from tests.conftest import TINY_SPEC

tf = pytest.importorskip("tensorflow")

import kbuild  # noqa: E402


def test_polynomial_schedule_rises_from_initial_to_final_on_update_steps():
    schedule = Schedule.of(PruneSpec(initial_sparsity=0.1, final_sparsity=0.8, begin=0.1, end=0.6, frequency=5), 100)
    assert (schedule.begin_step, schedule.end_step) == (10, 60)
    assert schedule.target(9) == 0.0 and schedule.target(10) == pytest.approx(0.1)
    assert schedule.target(14) == schedule.target(10)  # held between updates
    assert schedule.target(15) > schedule.target(10)
    targets = [schedule.target(s) for s in range(10, 61)]
    assert all(b >= a for a, b in itertools.pairwise(targets))
    assert schedule.target(60) == schedule.target(100) == 0.8
    # Cubic: most of the pruning happens early.
    assert schedule.target(35) > 0.1 + 0.5 * (0.8 - 0.1)


def test_masks_zero_exactly_the_requested_count_per_layer_or_globally():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(10, 10)), 0.01 * rng.normal(size=(50,))]
    per_layer = magnitude_masks(values, 0.5, "layer")
    assert [int((m == 0).sum()) for m in per_layer] == [50, 25]
    global_ = magnitude_masks(values, 0.5, "global")
    assert sum(int((m == 0).sum()) for m in global_) == 75
    assert int((global_[1] == 0).sum()) == 50  # the small-weight tensor loses everything first


@pytest.mark.parametrize("bad", ["prune: {final_sparsity: 1.0}", "prune: {final_sparsity: -0.1}",
                                 "prune: {final_sparsity: 0.5, initial_sparsity: 0.6}",
                                 "prune: {final_sparsity: 0.5, begin: 0.9, end: 0.2}",
                                 "prune: {final_sparsity: 0.5, variables: '('}"])
def test_bad_prune_sections_are_spec_errors_naming_the_key(write_spec, bad):
    with pytest.raises(SpecError, match="prune"):
        kbuild.load_spec(write_spec(TINY_SPEC + bad + "\n"))


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pruned")
    spec = folder / "spec.yaml"
    spec.write_text(TINY_SPEC + "prune: {final_sparsity: 0.7, begin: 0.25, end: 0.75, frequency: 1}\n")
    overrides = ["model.blocks=[{type: bilstm, units: 8}]", "model.pooling=max", "train.max_steps=8"]
    return kbuild.train(kbuild.load_spec(spec, overrides), run_dir=folder / "run")


def test_pruned_weights_are_exactly_zero_in_the_saved_model_and_the_export(pruned_run, tmp_path):
    from kbuild.runs import RunFolder, load_trained_model

    report = pruned_run.results["pruning"]
    assert report["sparsity"] == pytest.approx(0.7, abs=0.01)
    assert set(report["layers"]) >= {p for p in report["layers"] if "lstm" in p} and any("lstm" in p for p in report["layers"])
    assert pruned_run.results["nonzero_parameters"] < pruned_run.results["parameters"]
    model = load_trained_model(RunFolder(pruned_run.path))
    kernels = {v.path: v.numpy() for v in model.weights if v.path in report["layers"]}
    assert {p: round(float((k == 0).mean()), 6) for p, k in kernels.items()} == report["layers"]
    # Per-layer scope: each tensor loses exactly floor(0.7 * n) weights.
    assert all(int((k == 0).sum()) == int(0.7 * k.size) for k in kernels.values())
    # The export writes the zeros: the SavedModel's variables hold them.
    version = kbuild.export(pruned_run.path, tmp_path / "export")
    loaded = tf.saved_model.load(str(version))
    exported = [v.numpy() for v in loaded.variables if v.shape.rank == 2]
    assert sum(int((v == 0).sum()) for v in exported) >= report["zero_parameters"]
    assert json.loads((pruned_run.path / "results.json").read_text())["pruning"] == report


def test_an_unmatched_variable_regex_fails_naming_the_key(write_spec, tmp_path):
    from kbuild.errors import TrainingError

    spec = kbuild.load_spec(write_spec(TINY_SPEC + "prune: {final_sparsity: 0.5, variables: nothing_is_called_this}\n"))
    with pytest.raises(TrainingError, match="prune.variables"):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_evaluate_json_shows_the_runs_sparsity(pruned_run):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["evaluate", str(pruned_run.path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output[result.output.index("{"):])
    assert shown["sparsity"] == pruned_run.results["pruning"]["sparsity"] and "accuracy" in shown
    assert shown["sparsity_by_variable"] == pruned_run.results["pruning"]["layers"]
