"""The search folder and the Optuna study that lives in it.

    runs/<name>/search-<stamp>/
      search.json      metric, goal, source spec, overrides, sampler, pruner, seed, trials, study, storage
      study.journal    Optuna's journal (unless search.storage names an RDB)
      trials/<n>/      one ordinary run folder per trial (spec.yaml, model.keras, results.json, ...)
      logs/<n>.log     the trial process's output
      trials.csv  trials.md  importances.json  best.yaml  best.json

The journal file is Optuna's JournalStorage with a file backend: every process (workers, and each
trial reporting its epochs) appends to it under Optuna's file lock, so local workers share one
study and `--resume` continues it. An RDB URL in `search.storage` does the same across machines.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.errors import KbuildError, SpecError, SpecIssue
from kbuild.runs import (  # kbuild.runs imports no TensorFlow: the search process never needs it
    RUNS_ROOT,
    write_atomic,
)
from kbuild.spec.search import SearchSpec
from kbuild.spec.search_algorithms import build_pruner, build_sampler

META_VERSION = 1


class SearchFolderError(KbuildError):
    exit_code = 2


@dataclass(frozen=True)
class SearchFolder:
    """The layout of a search folder (the one place that knows it)."""

    path: Path

    @property
    def meta(self) -> Path:
        return self.path / "search.json"

    @property
    def journal(self) -> Path:
        return self.path / "study.journal"

    @property
    def trials(self) -> Path:
        return self.path / "trials"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def trial_dir(self, number: int) -> Path:
        return self.trials / str(number)

    def trial_log(self, number: int) -> Path:
        return self.logs / f"{number}.log"

    def read_meta(self) -> dict:
        return json.loads(self.meta.read_text(encoding="utf-8"))

    @contextlib.contextmanager
    def ask_lock(self) -> Iterator[None]:
        """Held while a worker counts the trials and asks for a new one, so local workers never
        start more than `search.trials` in all (with an RDB shared by machines, each machine has
        its own lock: the count may then overshoot by the number of machines minus one)."""
        with (self.path / ".ask.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def new_search_folder(spec: Any, spec_path: str, overrides: Sequence[str], run_dir: str | os.PathLike | None) -> SearchFolder:
    """Create the folder and its search.json for a validated spec with a `search:` section."""
    search: SearchSpec = spec.search
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = SearchFolder(Path(run_dir) if run_dir else RUNS_ROOT / spec.name / f"search-{stamp}")
    if folder.path.exists() and any(folder.path.iterdir()):
        raise SearchFolderError(f"search folder {folder.path} already exists and is not empty; "
                                f"continue it with kbuild tune --resume {folder.path}")
    for sub in (folder.path, folder.trials, folder.logs):
        sub.mkdir(parents=True, exist_ok=True)
    meta = {
        "metric": search.metric,
        "goal": search.direction,
        "spec": str(spec_path),
        "sampler": search.sampler,
        "pruner": search.pruner,
        "seed": search.seed if search.seed is not None else spec.seed,
        "trials": search.trials,
        "timeout_s": search.timeout_s,
        "overrides": list(overrides),
        "parameters": list(search.parameters),
        "study": f"{spec.name}-{stamp}",
        "storage": search.storage,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "version": META_VERSION,
    }
    write_atomic(folder.meta, json.dumps(meta, indent=2))
    return folder


def open_search_folder(path: str | os.PathLike) -> SearchFolder:
    folder = SearchFolder(Path(path))
    if not folder.meta.is_file():
        raise SearchFolderError(f"{path}: not a search folder (no search.json); pass runs/<name>/search-<stamp>")
    return folder


def load_search_spec(folder: SearchFolder) -> Any:
    """The tuned spec as the search was started (its file, with the same `--set` overrides); its
    metric and goal must still be the study's."""
    from kbuild.tasks.checks import load_spec

    meta = folder.read_meta()
    spec = load_spec(meta["spec"], meta["overrides"])
    if spec.search is None:
        raise SpecError([SpecIssue(meta["spec"], None, None, "search", "the spec no longer has a search: section")])
    changed = [f"{key} {meta[key]} -> {now}" for key, now in (("metric", spec.search.metric), ("goal", spec.search.direction))
               if meta[key] != now]
    if changed:
        raise SearchFolderError(f"{meta['spec']} changed the search's {', '.join(changed)} since the study started; "
                                f"start a new search instead of resuming this one")
    return spec


def storage_for(folder: SearchFolder, url: str | None) -> Any:
    """The study's Optuna storage: the RDB at `url`, or the journal file in the folder."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder.journal)))


def open_study(folder: SearchFolder, spec: Any, seed: int | None = None, create: bool = False) -> Any:
    """The folder's study with the spec's sampler (seeded with `seed`) and pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    meta = folder.read_meta()
    search: SearchSpec = spec.search
    storage = storage_for(folder, meta["storage"])
    sampler = build_sampler(search, meta["seed"] if seed is None else seed)
    pruner = build_pruner(search, spec.train.epochs)
    if create:
        return optuna.create_study(study_name=meta["study"], storage=storage, direction=meta["goal"],
                                   sampler=sampler, pruner=pruner, load_if_exists=True)
    try:
        return optuna.load_study(study_name=meta["study"], storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        raise SearchFolderError(f"{folder.path}: study {meta['study']!r} not found in its storage") from None


def worker_seed(seed: int, worker: int, existing_trials: int) -> int:
    """A sampler seed per worker and per session: two workers, or a resumed search, must not draw
    the same random start-up points again, yet a rerun of the same history draws the same ones."""
    import numpy as np

    return int(np.random.SeedSequence([seed, worker, existing_trials]).generate_state(1)[0])


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_alive_here(worker: str | None) -> bool | None:
    """Whether the worker that owns a trial still runs: None when it ran on another machine."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
