"""Read what a run folder (or a search folder) already holds into typed records: files only, no
model, no data (a report whose predictions are cached loads neither).

A folder that is missing, is not a run, or was left half-written (no results.json, a truncated
metrics.jsonl) is a one-line `ReportError`, never a traceback.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kbuild.errors import KbuildError
from kbuild.runs import RunFolder

SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
IMPORTANCES_FILE = "importances.json"
TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
PARAM_PREFIX = "params."


class ReportError(KbuildError):
    """A folder the report cannot read (exit 1: the input exists but is unusable)."""


class NotAReportFolder(KbuildError):
    """A path that is neither a run folder nor a search folder (exit 2: a usage error)."""

    exit_code = 2


@dataclass(frozen=True)
class Epoch:
    """One line of metrics.jsonl: the epoch number and every value logged for it."""

    number: int
    values: dict[str, float]


@dataclass(frozen=True)
class RunRecord:
    """A finished run as the report sees it.

    Args:
        folder: the run folder (its layout lives in kbuild.runs).
        spec: the resolved spec as written at the start of training (a plain mapping: the report
            shows it, it does not rebuild from it).
        spec_text: spec.yaml verbatim, for the collapsible block.
        results: results.json (final metrics per split, counts, device, timing).
        epochs: metrics.jsonl in order; empty when training logged no epoch.
    """

    folder: RunFolder
    spec: dict[str, Any]
    spec_text: str
    results: dict[str, Any]
    epochs: list[Epoch] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.results.get("name") or self.spec.get("name") or self.folder.path.name)

    @property
    def task(self) -> str:
        return str(self.results.get("task") or self.spec.get("task"))

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """split -> metric -> value (nested breakdowns, such as a tagger's per_type, included)."""
        return self.results.get("metrics") or {}

    @property
    def label(self) -> str:
        """How the run is named in a comparison: its spec name and, when it says more, its folder
        (runs of one spec differ by their timestamp folders)."""
        folder = self.folder.path.name
        return self.name if folder == self.name else f"{self.name} ({folder})"

    @property
    def monitor(self) -> str:
        """The metric that chose the best epoch (train.monitor)."""
        return str((self.spec.get("train") or {}).get("monitor") or "val_loss")


@dataclass(frozen=True)
class Trial:
    """One row of trials.csv."""

    number: int
    state: str
    value: float | None
    duration_s: float | None
    params: dict[str, str]


@dataclass(frozen=True)
class SearchRecord:
    """A search folder written by `kbuild tune`: search.json, trials.csv, importances.json (optional)
    and one run folder per trial under trials/<number>/."""

    path: Path
    metric: str
    goal: str
    spec: str
    trials: list[Trial]
    importances: dict[str, float]
    runs: dict[int, RunRecord]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not done:
            return None
        pick = max if self.goal == "maximize" else min
        return pick(done, key=lambda t: t.value)


def is_search_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / SEARCH_FILE).is_file()


def load_run(path: str | os.PathLike) -> RunRecord:
    """The run in `path`, or a one-line error saying what is missing and why it matters."""
    folder = RunFolder(Path(path))
    if not folder.path.is_dir():
        raise NotAReportFolder(f"{path}: no such folder")
    if not folder.spec.is_file():
        raise NotAReportFolder(f"{path}: not a kbuild run folder (no spec.yaml) nor a search folder (no {SEARCH_FILE})")
    if not folder.results.is_file():
        raise ReportError(f"{path}: the run is unfinished or failed (no results.json); "
                          "report a finished run, or resume it with `kbuild train SPEC --run-dir ... --resume`")
    spec_text = folder.spec.read_text(encoding="utf-8")
    try:
        spec = yaml.safe_load(spec_text)
    except yaml.YAMLError as exc:
        raise ReportError(f"{folder.spec}: not valid YAML ({_first_line(exc)})") from None
    if not isinstance(spec, dict):
        raise ReportError(f"{folder.spec}: expected a mapping, the resolved spec written by `kbuild train`")
    results = _read_json(folder.results)
    if not isinstance(results.get("metrics"), dict):
        raise ReportError(f"{folder.results}: no 'metrics' mapping; was it written by `kbuild train`?")
    return RunRecord(folder, spec, spec_text, results, read_epochs(folder.metrics))


def read_epochs(path: Path) -> list[Epoch]:
    """metrics.jsonl, one `Epoch` per line; a line that is not a JSON object names its number."""
    if not path.is_file():
        return []
    epochs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ReportError(f"{path}:{number}: not a JSON line (the file is truncated or corrupt)") from None
        if not isinstance(row, dict) or "epoch" not in row:
            raise ReportError(f"{path}:{number}: expected an object with an 'epoch' field")
        values = {k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))}
        epochs.append(Epoch(int(row["epoch"]), values))
    return epochs


def load_search(path: str | os.PathLike) -> SearchRecord:
    """The search folder in `path` (the contract of `kbuild tune`'s output)."""
    path = Path(path)
    meta = _read_json(path / SEARCH_FILE)
    for key in ("metric", "goal"):
        if not isinstance(meta.get(key), str):
            raise ReportError(f"{path / SEARCH_FILE}: missing the string field {key!r}")
    if meta["goal"] not in ("maximize", "minimize"):
        raise ReportError(f"{path / SEARCH_FILE}: goal must be 'maximize' or 'minimize'; received {meta['goal']!r}")
    trials = _read_trials(path / TRIALS_FILE)
    importances_file = path / IMPORTANCES_FILE
    importances = _read_json(importances_file) if importances_file.is_file() else {}
    runs = {}
    for trial in trials:
        trial_dir = path / "trials" / str(trial.number)
        # Only finished trials have results; a pruned, failed or running one is listed, not loaded.
        if (trial_dir / "results.json").is_file():
            runs[trial.number] = load_run(trial_dir)
    return SearchRecord(path, meta["metric"], meta["goal"], str(meta.get("spec", "")), trials,
                        {str(k): float(v) for k, v in importances.items()}, runs)


def _read_trials(path: Path) -> list[Trial]:
    if not path.is_file():
        raise ReportError(f"{path.parent}: the search folder has no {TRIALS_FILE} yet")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"number", "state", "value", "duration_s"} - set(reader.fieldnames or ())
        if missing:
            raise ReportError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        trials = []
        for row in reader:
            line = reader.line_num
            if row["state"] not in TRIAL_STATES:
                raise ReportError(f"{path}:{line}: state must be one of {', '.join(TRIAL_STATES)}; "
                                  f"received {row['state']!r}")
            try:
                trials.append(Trial(
                    int(row["number"]), row["state"], _number(row["value"]), _number(row["duration_s"]),
                    {k.removeprefix(PARAM_PREFIX): v for k, v in row.items() if k and k.startswith(PARAM_PREFIX)},
                ))
            except ValueError as exc:
                raise ReportError(f"{path}:{line}: {exc}") from None
    return trials


def _number(text: str | None) -> float | None:
    """A CSV cell as a float; empty (a pruned or failed trial) is None."""
    if text is None or not text.strip():
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the file is truncated or corrupt") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
