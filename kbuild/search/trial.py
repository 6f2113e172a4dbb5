"""One trial, in a process of its own: `python -m kbuild.search.trial FOLDER NUMBER TRIAL_ID --set ...`.

The trial is `kbuild train SPEC --set ...` into `trials/<number>/`, an ordinary run folder, plus
one callback: after every epoch it reports the search metric to the study (through the shared
storage) and asks the pruner whether to go on; a pruned trial stops there. A fresh process per
trial is what keeps memory flat over a long search (keras-tuner's single process grows until it
dies: its issues #873, #1031), and a trial that crashes, even natively, takes only itself down.

The outcome goes to `trials/<number>/trial.json`; the worker that started the process reads it
and tells Optuna. Exit codes: 0 complete or pruned, 1 failed, 2 the search itself is wrong (every
trial would fail the same way: stop the search), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from kbuild.errors import Interrupted, KbuildError
from kbuild.registry import did_you_mean
from kbuild.runtime import sigterm_as_interrupt
from kbuild.search.lifeline import end_with_parent
from kbuild.search.study import (
    SearchFolder,
    load_search_spec,
    open_search_folder,
    open_study,
    write_atomic,
)

EXIT_FAILED, EXIT_SEARCH_ERROR, EXIT_INTERRUPTED = 1, 2, 130


class SearchMetricMissing(KbuildError):
    """The search metric is not among the epoch's logs: no trial of this search can be scored."""

    exit_code = 2


def outcome_path(folder: SearchFolder, number: int) -> Path:
    return folder.trial_dir(number) / "trial.json"


def read_outcome(folder: SearchFolder, number: int) -> dict | None:
    path = outcome_path(folder, number)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def pruning_callback(trial: Any, metric: str) -> Any:
    """A Keras callback that reports `metric` to an Optuna trial each epoch (step = epochs
    trained) and stops training when the study's pruner says so."""
    import keras

    class ReportToOptuna(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.reported: list[float] = []
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            if metric not in logs:
                raise SearchMetricMissing(f"search.metric {metric!r} is not among this task's epoch metrics"
                                          f"{did_you_mean(metric, sorted(logs))}: {', '.join(sorted(logs)) or 'none'}")
            value = float(logs[metric])
            self.reported.append(value)
            if not math.isfinite(value):
                return  # the NaN guard fails the run; Optuna refuses non-finite reports
            trial.report(value, epoch + 1)
            if trial.should_prune():
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return ReportToOptuna()


def run(folder: SearchFolder, number: int, trial_id: int, overrides: list[str]) -> dict:
    """Train the trial; return its outcome (state, value, metrics). Raises on failure."""
    import optuna

    from kbuild.runtime import init_tensorflow
    from kbuild.tasks.checks import load_spec
    from kbuild.training.strategy import prepare_devices

    meta = folder.read_meta()
    searched = load_search_spec(folder)
    spec = load_spec(meta["spec"], [*meta["overrides"], *overrides])
    init_tensorflow(before_start=lambda: prepare_devices(spec.train))
    from kbuild.training import train

    trial = optuna.trial.Trial(open_study(folder, searched), trial_id)
    reporter = pruning_callback(trial, meta["metric"])
    result = train(spec, run_dir=folder.trial_dir(number), callbacks=[reporter])
    metrics = result.results["metrics"]
    split, _, name = meta["metric"].partition("_")  # val_accuracy -> the valid split's accuracy
    if reporter.pruned_at is not None:
        state, value = "PRUNED", reporter.reported[-1]
    else:
        # The saved best model's score on the valid split: what best.yaml reproduces.
        state, value = "COMPLETE", metrics.get("valid", {}).get(name, reporter.reported[-1] if reporter.reported else None)
    return {"state": state, "value": value, "epochs": len(reporter.reported), "pruned_at_epoch": reporter.pruned_at,
            "reported": reporter.reported, "valid": metrics.get("valid", {}), "test": metrics.get("test", {}),
            "train_time_s": result.results.get("train_time_s")}


def rss_peak_mib() -> float:
    """This process's peak resident set size (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kbuild.search.trial", description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("number", type=int)
    parser.add_argument("trial_id", type=int)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    end_with_parent()  # a trial whose worker died would train on unheard (kbuild.search.lifeline)
    folder = open_search_folder(args.folder)
    started = time.perf_counter()
    code = 0
    try:
        # SIGTERM (the worker's, or its death's) before training has started, in TensorFlow's
        # import or the data pipeline, is an interruption too: recorded, and re-run on --resume.
        with sigterm_as_interrupt():
            outcome = run(folder, args.number, args.trial_id, args.overrides)
    except Interrupted as exc:
        outcome, code = {"state": "FAIL", "interrupted": True, "error": str(exc)}, EXIT_INTERRUPTED
    except KeyboardInterrupt:
        outcome, code = {"state": "FAIL", "interrupted": True, "error": "interrupted"}, EXIT_INTERRUPTED
    except SearchMetricMissing as exc:
        outcome, code = {"state": "FAIL", "error": str(exc)}, EXIT_SEARCH_ERROR
    except Exception as exc:  # noqa: BLE001  (a failed trial is recorded as FAIL; the search goes on)
        traceback.print_exc()
        outcome, code = {"state": "FAIL", "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"}, EXIT_FAILED
    outcome.update(number=args.number, duration_s=round(time.perf_counter() - started, 2), rss_peak_mib=rss_peak_mib())
    folder.trial_dir(args.number).mkdir(parents=True, exist_ok=True)
    write_atomic(outcome_path(folder, args.number), json.dumps(outcome, indent=2))
    print(f"[kbuild] trial {args.number}: {outcome['state']} {outcome.get('value', '')} {outcome.get('error', '')}",
          file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
