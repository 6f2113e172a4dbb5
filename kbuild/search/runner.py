"""Running a search: each worker asks the study for a trial, trains it in a child process, tells
the result, rewrites the outputs and prints a line; `--workers N` runs N such loops as processes
on one study (`python -m kbuild.search.runner FOLDER --worker I`).

Ctrl-C reaches the whole process group: each trial process checkpoints and exits 130, its worker
marks the trial FAIL (`interrupted`) and stops; `--resume` re-queues interrupted trials with the
same parameters and continues until `search.trials` trials have finished. Asks and tells run with
SIGINT deferred, so the journal never holds half a write.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kbuild
from kbuild.errors import Interrupted, KbuildError, SpecError, SpecIssue
from kbuild.runtime import deferred_interrupts, sigterm_as_interrupt
from kbuild.search.lifeline import end_with_parent, parent_env
from kbuild.search.output import Summary, collect, progress_line, trial_line, write_outputs
from kbuild.search.study import (
    SearchFolder,
    is_alive_here,
    load_search_spec,
    new_search_folder,
    open_search_folder,
    open_study,
    worker_id,
    worker_seed,
)
from kbuild.search.trial import EXIT_INTERRUPTED, EXIT_SEARCH_ERROR, outcome_path, read_outcome
from kbuild.spec.search_algorithms import SAMPLERS, build_sampler
from kbuild.spec.search_paths import trial_overrides

# How long a trial process may take to checkpoint after Ctrl-C before it is sent SIGTERM, then
# killed; a worker process gets longer, since it waits for its trial first.
_TRIAL_GRACE_S = (20.0, 60.0)
_WORKER_GRACE_S = (120.0, 60.0)
# Child processes of this process, to pass a SIGTERM on to (Ctrl-C reaches them by itself).
_CHILDREN: list[subprocess.Popen] = []


def log(message: str) -> None:
    print(f"[kbuild] {message}", file=sys.stderr, flush=True)


class SearchStopped(KbuildError):
    """A trial showed that the search itself cannot work (e.g. its metric does not exist)."""

    exit_code = 2


def start_search(spec_path: str | os.PathLike, overrides: Sequence[str] = (), run_dir: str | os.PathLike | None = None,
                 workers: int = 1) -> tuple[SearchFolder, Summary]:
    """Create the search folder and study for `spec_path` (which has a `search:` section), then run it."""
    folder = create_search(spec_path, overrides, run_dir)
    return folder, run_search(folder, workers)


def create_search(spec_path: str | os.PathLike, overrides: Sequence[str] = (),
                  run_dir: str | os.PathLike | None = None) -> SearchFolder:
    """The search folder, its search.json and its empty study; nothing is trained yet."""
    from kbuild.tasks.checks import load_spec

    spec = load_spec(spec_path, overrides)
    if spec.search is None:
        raise SpecError([SpecIssue(str(spec_path), None, None, "search",
                                   "the spec has no search: section (see specs/sst2_bilstm_search.yaml)")])
    build_sampler(spec.search, 0)  # a sampler whose package is missing fails before the folder exists
    folder = new_search_folder(spec, os.path.abspath(spec_path), overrides, run_dir)
    open_study(folder, spec, create=True)
    log(f"search folder {folder.path}: {spec.search.trials} trials over {', '.join(spec.search.parameters)}; "
        f"sampler {spec.search.sampler}, pruner {spec.search.pruner}")
    return folder


def resume_search(path: str | os.PathLike, workers: int = 1) -> tuple[SearchFolder, Summary]:
    """Continue the search in `path`: interrupted trials run again, then new ones up to the budget."""
    folder = open_search_folder(path)
    spec = load_search_spec(folder)
    study = open_study(folder, spec)
    requeued = recover(folder, study)
    log(f"resuming {folder.path}: {len(study.trials)} trial(s) so far, {requeued} interrupted one(s) queued again")
    return folder, run_search(folder, workers)


def show_search(path: str | os.PathLike) -> Summary:
    """The folder's trials as they stand now (rebuilt from the study, so a running search shows too)."""
    folder = open_search_folder(path)
    spec = load_search_spec(folder)
    return collect(open_study(folder, spec), spec, folder.read_meta())


def run_search(folder: SearchFolder, workers: int = 1) -> Summary:
    """Run the folder's study to its trial budget (or timeout) with `workers` local loops."""
    spec = load_search_spec(folder)
    started = time.time()
    deadline = started + spec.search.timeout_s if spec.search.timeout_s else None
    try:
        if workers == 1:
            work(folder, worker=0, deadline=deadline, started=started)
        else:
            _run_workers(folder, workers, deadline, started)
    except (KeyboardInterrupt, Interrupted):
        write_outputs(folder, open_study(folder, spec), spec)
        raise Interrupted(f"search interrupted; the study is consistent. Continue with: kbuild tune --resume {folder.path}") from None
    return write_outputs(folder, open_study(folder, spec), spec)


def work(folder: SearchFolder, worker: int, deadline: float | None, started: float) -> None:
    """One worker's loop: ask, train in a child process, tell, until the budget or the deadline."""
    import optuna

    spec = load_search_spec(folder)
    search = spec.search
    meta = folder.read_meta()
    existing = len(open_study(folder, spec).get_trials(deepcopy=False))
    study = open_study(folder, spec, seed=worker_seed(meta["seed"], worker, existing))
    budget = search.trials
    if SAMPLERS.get(search.sampler).needs_grid:
        budget = min(budget, search.grid_size())
    env = _child_env()
    with _sigterm_as_interrupt():
        while True:
            with folder.ask_lock(), deferred_interrupts():
                trials = study.get_trials(deepcopy=False)
                if _counted(trials) >= budget or (deadline is not None and time.time() >= deadline):
                    return
                trial = study.ask()
                trial.set_user_attr("worker", worker_id())
                sampled = {path: space.suggest(trial, path) for path, space in search.parameters.items()}
            outcome = run_trial_process(folder, trial.number, trial._trial_id, trial_overrides(search, sampled), env)
            with deferred_interrupts():
                trial.set_user_attr("worker_rss_mib", _rss_mib())
                _tell(study, trial, outcome, optuna)
            summary = write_outputs(folder, study, spec)
            log(trial_line(summary, trial.number))
            log(progress_line(summary, started))
            if outcome.get("interrupted"):
                raise KeyboardInterrupt
            if outcome.get("exit_code") == EXIT_SEARCH_ERROR:
                raise SearchStopped(f"search stopped at trial {trial.number}: {outcome.get('error')}")


def run_trial_process(folder: SearchFolder, number: int, trial_id: int, overrides: Sequence[str],
                      env: dict[str, str] | None = None) -> dict:
    """Run one trial in a child process (output to logs/<number>.log); return its outcome, with
    `exit_code` and, if it ended by Ctrl-C or SIGTERM, `interrupted`."""
    command = [sys.executable, "-m", "kbuild.search.trial", str(folder.path.resolve()), str(number), str(trial_id)]
    for text in overrides:
        command += ["--set", text]
    interrupted = False
    with folder.trial_log(number).open("w", encoding="utf-8") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        _CHILDREN.append(process)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            interrupted = True
            code = _stop(process, _TRIAL_GRACE_S)
        finally:
            _CHILDREN.remove(process)
    outcome = read_outcome(folder, number) or {
        "state": "FAIL", "error": f"the trial process exited with code {code} before writing an outcome; "
                                  f"see {folder.trial_log(number)}"}
    outcome["exit_code"] = code
    if interrupted or code == EXIT_INTERRUPTED:
        outcome["interrupted"] = True
    return outcome


def recover(folder: SearchFolder, study: Any) -> int:
    """Before a resume: trials left RUNNING by a worker of this machine that no longer runs are
    settled from their `trial.json` when the trial got that far (a worker killed after its trial
    finished but before it told the study: the result is recorded, not trained again), else
    become FAIL (interrupted); every interrupted trial not yet retried is queued again with its
    parameters. Returns how many were queued."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if is_alive_here(trial.user_attrs.get("worker")) is False:
            outcome = read_outcome(folder, trial.number) or {
                "state": "FAIL", "interrupted": True, "error": "its worker stopped before the trial finished"}
            _tell(study, optuna.trial.Trial(study, trial._trial_id), outcome, optuna)
            if not outcome.get("interrupted"):
                log(f"trial {trial.number}: {outcome['state']} {outcome.get('value', '')}, recorded from "
                    f"{outcome_path(folder, trial.number)} (its worker stopped before telling the study)")
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = 0
    for trial in trials:
        if trial.user_attrs.get("interrupted") and trial.number not in retried and trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            queued += 1
    return queued


def _tell(study: Any, trial: Any, outcome: dict, optuna: Any) -> None:
    for key in ("epochs", "pruned_at_epoch", "rss_peak_mib", "valid", "test", "error", "interrupted", "train_time_s"):
        if outcome.get(key) is not None:
            trial.set_user_attr(key, outcome[key])
    value = outcome.get("value")
    state = outcome.get("state")
    if state == "COMPLETE" and isinstance(value, int | float) and math.isfinite(value):
        study.tell(trial, float(value))
    elif state == "PRUNED":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _counted(trials: Sequence[Any]) -> int:
    """Trials that use up the budget: started ones, except those a Ctrl-C cut short (re-run on resume)."""
    return sum(t.state.name != "WAITING" and not t.user_attrs.get("interrupted") for t in trials)


def _stop(process: subprocess.Popen, grace_s: tuple[float, float]) -> int:
    """After Ctrl-C: the child got SIGINT too (same process group) and is writing its checkpoint;
    give it time, then SIGTERM (which kbuild train also checkpoints on), then kill. Another
    Ctrl-C meanwhile skips to the next step."""
    for grace, then in zip(grace_s, (process.terminate, process.kill), strict=True):
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            return process.wait(timeout=grace)
        then()
    return process.wait()


def _child_env(threads: int | None = None) -> dict[str, str]:
    """The trial's environment: this very kbuild first on the path, and with several workers on
    one machine, TensorFlow's thread pools sized to share the cores instead of each taking all."""
    env = parent_env(dict(os.environ))  # the child ends when this process dies (kbuild.search.lifeline)
    root = str(Path(kbuild.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads is not None:
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        env.setdefault("TF_NUM_INTEROP_THREADS", str(max(1, threads // 2)))
    return env


def _run_workers(folder: SearchFolder, workers: int, deadline: float | None, started: float) -> None:
    env = _child_env(threads=max(1, (os.cpu_count() or 1) // workers))
    command = [sys.executable, "-m", "kbuild.search.runner", str(folder.path.resolve()), "--started", repr(started)]
    if deadline is not None:
        command += ["--deadline", repr(deadline)]
    with _sigterm_as_interrupt():
        processes = [subprocess.Popen([*command, "--worker", str(i)], env=env, stdin=subprocess.DEVNULL)
                     for i in range(workers)]
        _CHILDREN.extend(processes)
        try:
            codes = _wait_all(processes)
        finally:
            del _CHILDREN[:]
    if EXIT_INTERRUPTED in codes:
        raise Interrupted("interrupted")
    if any(codes):
        raise SearchStopped(f"worker(s) failed with exit codes {codes}; see the lines above; "
                            f"continue with: kbuild tune --resume {folder.path}")


def _wait_all(processes: list[subprocess.Popen]) -> list[int]:
    try:
        return [p.wait() for p in processes]
    except KeyboardInterrupt:  # the workers got the signal too; they stop their trials and exit 130
        codes = [_stop(p, _WORKER_GRACE_S) for p in processes]
        return [*codes, EXIT_INTERRUPTED]


def _rss_mib() -> float | None:
    """This worker's current resident set size (Linux /proc), to show it does not grow per trial."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """SIGTERM stops the search like Ctrl-C; unlike Ctrl-C it reaches only this process, so pass
    it on to the running children first."""
    def _forward() -> None:
        for child in list(_CHILDREN):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    return sigterm_as_interrupt(_forward)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kbuild.search.runner", description="One worker of a kbuild search.")
    parser.add_argument("folder")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--started", type=float, required=True)
    parser.add_argument("--deadline", type=float)
    args = parser.parse_args(argv)
    end_with_parent()
    try:
        work(open_search_folder(args.folder), args.worker, args.deadline, args.started)
    except (KeyboardInterrupt, Interrupted):
        return EXIT_INTERRUPTED
    except KbuildError as exc:
        log(f"worker {args.worker}: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
