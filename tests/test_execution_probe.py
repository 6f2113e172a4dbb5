"""`jit_compile: auto` / `steps_per_execution: auto`: the timed probe at train start, its cache,
its limits, and that it never changes what a run computes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
import kbuild.training.execution as execution  # noqa: E402
from kbuild.training.execution import Candidate, choose_execution  # noqa: E402

# 512 train rows at batch 32: 16 steps an epoch, 32 in all.
SHORT = ["data.limit=512", "train.max_steps=null", "train.epochs=2"]


@pytest.fixture
def quick_probe(monkeypatch):
    """A probe that fits a test: every run is probed, two timed executions per candidate."""
    monkeypatch.setattr(execution, "MIN_STEPS", 0)
    monkeypatch.setattr(execution, "MIN_RUN_S", 0)
    monkeypatch.setattr(execution, "WARMUP_EXECUTIONS", 1)
    monkeypatch.setattr(execution, "TIMED_STEPS", 4)
    monkeypatch.setattr(execution, "SPE_CANDIDATES", (4, 5))  # 5 divides neither 16 nor 32
    monkeypatch.setattr(execution, "DISTURBED_SHARE", 1.0)  # the tests' own load never voids a probe
    return execution


def _losses(run) -> list[float]:
    return [row["loss"] for row in map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines())]


def _weights(run) -> list[np.ndarray]:
    from kbuild.runs import RunFolder, load_trained_model

    return [np.asarray(v) for v in load_trained_model(RunFolder(run.path)).get_weights()]


def test_the_probe_times_candidates_and_never_changes_the_result(quick_probe, tiny_spec_file, tmp_path):
    probed = kbuild.train(kbuild.load_spec(tiny_spec_file, SHORT), run_dir=tmp_path / "probed")
    chosen = probed.results["execution"]
    assert chosen["source"] == "probe" and chosen["probe_seconds"] > 0
    assert set(chosen["ms_per_step"]) == {"XLA off, 1 step(s) per execution", "XLA on, 1 step(s) per execution",
                                          f"XLA {'on' if chosen['jit_compile'] else 'off'}, 4 step(s) per execution"}
    assert all(ms is None or ms > 0 for ms in chosen["ms_per_step"].values())
    assert (probed.path / "cache" / "execution.json").is_file()

    # The same settings, given in the spec (no probe): the same loss curve and the same weights.
    fixed = [*SHORT, f"train.jit_compile={str(chosen['jit_compile']).lower()}",
             f"train.steps_per_execution={chosen['steps_per_execution']}"]
    plain = kbuild.train(kbuild.load_spec(tiny_spec_file, fixed), run_dir=tmp_path / "plain")
    assert plain.results["execution"]["source"] == "spec"
    np.testing.assert_allclose(_losses(probed), _losses(plain), rtol=1e-6)
    for a, b in zip(_weights(probed), _weights(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_execution_leaves_the_loss_curve_as_it_was(tiny_spec_file, tmp_path):
    runs = [kbuild.train(kbuild.load_spec(tiny_spec_file, [*SHORT, "train.jit_compile=false", f"train.steps_per_execution={k}"]),
                         run_dir=tmp_path / f"spe{k}") for k in (1, 8)]
    assert [run.results["steps"] for run in runs] == [32, 32]
    np.testing.assert_allclose(_losses(runs[0]), _losses(runs[1]), rtol=1e-5)


def test_a_later_run_of_the_same_spec_reads_the_cached_choice(quick_probe, tiny_spec_file, tmp_path, monkeypatch):
    spec = kbuild.load_spec(tiny_spec_file, SHORT)
    first = kbuild.train(spec, run_dir=tmp_path / "runs" / "a")
    monkeypatch.setattr(execution, "_probe", lambda *a, **k: pytest.fail("probed again"))
    second = kbuild.train(spec, run_dir=tmp_path / "runs" / "b")
    assert second.results["execution"]["source"] == "cache"
    assert second.results["execution"]["key"] == first.results["execution"]["key"]
    # another spec (a different hash) is probed afresh
    with pytest.raises(pytest.fail.Exception, match="probed again"):
        kbuild.train(kbuild.load_spec(tiny_spec_file, [*SHORT, "seed=8"]), run_dir=tmp_path / "runs" / "c")


def test_a_run_too_short_to_repay_it_times_only_the_plain_setting(quick_probe, tiny_spec_file, tmp_path, monkeypatch):
    monkeypatch.setattr(execution, "MIN_RUN_S", 1e9)
    run = kbuild.train(kbuild.load_spec(tiny_spec_file, SHORT), run_dir=tmp_path / "run")
    chosen = run.results["execution"]
    assert chosen["source"] == "probe" and "too short to repay" in chosen["reason"]
    assert list(chosen["ms_per_step"]) == ["XLA off, 1 step(s) per execution"]
    assert chosen["jit_compile"] is False and chosen["steps_per_execution"] == 1

    # The plain setting was timed on the run's own model (its traced step kept, no throwaway
    # built), and its state put back: the same loss curve and weights as with the setting given.
    given = kbuild.train(kbuild.load_spec(tiny_spec_file, [*SHORT, "train.jit_compile=false", "train.steps_per_execution=1"]),
                         run_dir=tmp_path / "given")
    np.testing.assert_allclose(_losses(run), _losses(given), rtol=1e-6)
    for a, b in zip(_weights(run), _weights(given), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_timing_on_the_real_model_builds_no_throwaway(quick_probe, tiny_spec_file, tmp_path, monkeypatch):
    import kbuild.training.fit as fit

    monkeypatch.setattr(execution, "MIN_RUN_S", 1e9)
    built = []
    original = fit.compile_model
    monkeypatch.setattr(fit, "compile_model", lambda *a, **k: built.append(a[3]) or original(*a, **k))
    run = kbuild.train(kbuild.load_spec(tiny_spec_file, SHORT), run_dir=tmp_path / "run")
    assert run.results["execution"]["source"] == "probe"
    assert built == [run.results["steps"]], "one model, built for the run's own step budget"


def test_short_runs_and_multi_worker_are_not_probed(tiny_spec_file, tmp_path):
    run = kbuild.train(kbuild.load_spec(tiny_spec_file), run_dir=tmp_path / "short")  # 4 steps
    assert run.results["execution"]["source"] == "default"
    assert "too short" in run.results["execution"]["reason"]
    assert run.results["execution"]["jit_compile"] == "auto" and run.results["execution"]["steps_per_execution"] == 1

    from kbuild.runs import RunFolder

    spec = kbuild.load_spec(tiny_spec_file, SHORT)
    choice = choose_execution(spec, RunFolder(tmp_path / "mw"), 16, 32, build=None, dataset=None, reset=None,
                              multi_worker=True, log=print)
    assert choice.source == "default" and "multi_worker" in choice.reason


def test_steps_per_execution_candidates_divide_the_epoch_and_skip_pruning(tiny_spec_file, monkeypatch):
    monkeypatch.setattr(execution, "SPE_CANDIDATES", (4, 8, 32))
    spec = kbuild.load_spec(tiny_spec_file, SHORT)
    assert execution._spe_candidates(spec, 16, 32) == [1, 4, 8]
    assert execution._spe_candidates(spec, 16, 36) == [1, 4]
    assert execution._spe_candidates(kbuild.load_spec(tiny_spec_file, [*SHORT, "train.checkpoint_every=4"]), 16, 32) == [1, 4]
    assert execution._spe_candidates(kbuild.load_spec(tiny_spec_file, [*SHORT, "train.steps_per_execution=2"]), 16, 32) == [2]
    pruned = kbuild.load_spec(tiny_spec_file, [*SHORT, "prune={final_sparsity: 0.5}"])
    assert execution._spe_candidates(pruned, 16, 32) == [1]


def test_a_candidate_is_chosen_only_when_clearly_faster():
    plain, xla = Candidate(False, 1), Candidate(True, 1)
    assert execution._pick({plain: 10.0, xla: 9.8}, [False, True], [1]).candidate == plain
    assert execution._pick({plain: 10.0, xla: 7.0}, [False, True], [1]).candidate == xla
    assert execution._pick({plain: 10.0, xla: None}, [False, True], [1]).candidate == plain
    described = execution._pick({plain: 41.0, xla: 63.0}, [False, True], [1])
    described.source, described.probe_seconds = "probe", 3.2
    assert described.describe() == ("execution: XLA off, 1 step(s) per execution (probed in 3.2 s; "
                                    "XLA off, 1 step(s) per execution: 41.0 ms/step, XLA on, 1 step(s) per execution: 63.0 ms/step)")


def test_a_probe_disturbed_by_other_processes_keeps_the_plain_setting_uncached(quick_probe, tiny_spec_file, tmp_path,
                                                                               monkeypatch):
    class Busy:
        def other_share(self):
            return 0.6

    monkeypatch.setattr(execution, "DISTURBED_SHARE", 0.2)
    monkeypatch.setattr(execution, "CpuShare", Busy)
    run = kbuild.train(kbuild.load_spec(tiny_spec_file, SHORT), run_dir=tmp_path / "busy")
    chosen = run.results["execution"]
    assert chosen["source"] == "probe" and len(chosen["ms_per_step"]) >= 2  # timed, then not trusted
    assert (chosen["jit_compile"], chosen["steps_per_execution"]) == (False, 1)
    assert "used 60% of the CPUs during the probe" in chosen["reason"]
    assert not (run.path / "cache" / "execution.json").exists()


def test_other_processes_share_of_the_cpus_is_read_from_proc_stat(tmp_path, monkeypatch):
    import os

    stat = tmp_path / "stat"
    monkeypatch.setattr(execution, "PROC_STAT", stat)
    tick = os.sysconf("SC_CLK_TCK")
    own = iter([10.0, 11.0])  # this process: 1 CPU second in the window
    monkeypatch.setattr(os, "times", lambda: os.times_result((next(own), 0.0, 0.0, 0.0, 0.0)))
    # user nice system idle iowait irq softirq steal: 4 s busy of 10 s between the two readings.
    stat.write_text(f"cpu  {100 * tick} 0 0 {100 * tick} 0 0 0 0 0 0\ncpu0 1 2 3\n")
    share = execution.CpuShare()
    stat.write_text(f"cpu  {103 * tick} 0 0 {106 * tick} 0 0 0 {1 * tick} 0 0\n")
    assert share.other_share() == pytest.approx((4 - 1) / 10)
    stat.unlink()
    assert execution.CpuShare().other_share() is None  # not Linux: no check
