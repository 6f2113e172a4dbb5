"""Issue 29, item 2: a search survives `kill -9` of a worker or of `kbuild tune` itself.

The trials here are the tiny spec's (a few steps); the processes are real and the kills are real
SIGKILLs, found through /proc (Linux), so each test takes the start-up of one or two TensorFlow
processes, about 20-40 s on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from kbuild import load_spec
from kbuild.search.runner import create_search, recover, resume_search
from kbuild.search.study import open_search_folder, open_study
from kbuild.search.trial import outcome_path
from tests.conftest import REPO, TINY_SPEC

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes through /proc")

SEARCH = """\
search:
  metric: val_loss
  trials: {trials}
  sampler: random
  pruner: none
  parameters:
    train.optimizer.learning_rate: {{space: loguniform, lower: 1.0e-4, upper: 1.0e-2}}
"""
# Long enough that a trial is still training when it is killed (it is never left to finish).
LONG = TINY_SPEC.replace("epochs: 1", "epochs: 500").replace("max_steps: 4", "max_steps: 100000")


def _spec(write_spec, trials: int, base: str = TINY_SPEC) -> Path:
    write_spec(base, "tiny.yaml")
    return write_spec("extends: tiny.yaml\n" + SEARCH.format(trials=trials), "search.yaml")


def _tune(spec_path: Path, run_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "kbuild.cli", "tune", str(spec_path), "--run-dir", str(run_dir), *args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _kill_all(pids) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_takes_its_trial_down_and_a_killed_tune_its_workers(write_spec, tmp_path):
    tune = _tune(_spec(write_spec, trials=4, base=LONG), tmp_path / "s", "--workers", "2")
    everyone = [tune.pid]
    try:
        workers = _wait(lambda: len(ws := _children(tune.pid)) == 2 and ws, 120, "two workers")
        everyone += workers
        trials = _wait(lambda: all(ts := [_children(w) for w in workers]) and [t[0] for t in ts], 180,
                       "a trial process under each worker")
        everyone += trials
        os.kill(workers[0], signal.SIGKILL)
        # The killed worker's trial ends (on today's main it trained on, unheard by the study).
        _wait(lambda: not _alive(trials[0]), 60, f"trial process {trials[0]} to end after its worker was killed")
        assert _alive(workers[1]) and _alive(trials[1])  # the other worker goes on
        os.kill(tune.pid, signal.SIGKILL)
        tune.communicate(timeout=30)
        # `kbuild tune` is gone: its other worker stops its trial and exits (before: both ran to the end).
        _wait(lambda: not _alive(workers[1]) and not _alive(trials[1]), 90, "the other worker and its trial to end")
    finally:
        _kill_all(everyone)
    folder = open_search_folder(tmp_path / "s")
    study = open_study(folder, load_spec(folder.read_meta()["spec"]))
    # The worker that was told to stop recorded its trial as interrupted; the killed one could not,
    # and the resume settles that one: both run again with their parameters.
    states = sorted(t.state.name for t in study.get_trials(deepcopy=False))
    assert states == ["FAIL", "RUNNING"], states
    assert recover(folder, study) == 2
    assert all(t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False)[:2])


def test_resume_records_a_trial_that_finished_after_its_worker_was_killed(write_spec, tmp_path):
    tune = _tune(_spec(write_spec, trials=1), tmp_path / "s")  # one worker: the tune process itself
    outcome = tmp_path / "s" / "trials" / "0" / "trial.json"
    try:
        _wait(lambda: _children(tune.pid), 120, "the trial process")
        os.kill(tune.pid, signal.SIGSTOP)  # the worker hears nothing more: its trial trains on to the end
        _wait(outcome.is_file, 240, "the trial to write trial.json")
    finally:
        os.kill(tune.pid, signal.SIGKILL)
        tune.communicate(timeout=30)
    recorded = json.loads(outcome.read_text())
    assert recorded["state"] == "COMPLETE"
    folder, summary = resume_search(tmp_path / "s")
    # Recorded from trial.json, not marked FAIL and trained again (today's main: {0: FAIL, 1: COMPLETE}).
    assert [(r.number, r.state) for r in summary.rows] == [(0, "COMPLETE")]
    assert summary.best.value == pytest.approx(recorded["value"])
    assert not (folder.trials / "1").exists()


def test_recover_settles_a_dead_workers_trials_from_their_outcome_files(write_spec, tmp_path):
    folder = create_search(_spec(write_spec, trials=3), run_dir=tmp_path / "s")
    study = open_study(folder, load_spec(folder.read_meta()["spec"]))
    dead = f"{socket.gethostname()}:999999999"  # a pid no process has
    outcomes = [{"state": "COMPLETE", "value": 0.5, "epochs": 1}, {"state": "PRUNED", "value": 0.9},
                {"state": "FAIL", "interrupted": True, "error": "interrupted"}, None]
    for number, outcome in enumerate(outcomes):
        trial = study.ask()
        trial.suggest_float("train.optimizer.learning_rate", 1e-4, 1e-2, log=True)
        trial.set_user_attr("worker", dead)
        if outcome is not None:
            folder.trial_dir(number).mkdir(parents=True)
            outcome_path(folder, number).write_text(json.dumps(outcome))
    assert recover(folder, study) == 2  # the interrupted trial and the one without an outcome
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials[:4]] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                                             optuna.trial.TrialState.FAIL, optuna.trial.TrialState.FAIL]
    assert trials[0].value == 0.5 and trials[0].user_attrs["epochs"] == 1
    assert [t.user_attrs["retry_of"] for t in trials[4:]] == [2, 3]
