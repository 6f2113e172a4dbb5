"""What a search leaves behind, rebuilt from the study after every finished trial.

    trials.csv        number,state,value,duration_s,params.<path>...  (the contract `kbuild report` reads)
    trials.md         the same table with epochs and peak RSS, the best trial, the importances
    importances.json  {parameter: importance}, Optuna's default evaluator, once >= 2 trials completed
    best.yaml         the best trial's fully resolved spec: `kbuild train best.yaml` retrains it
    best.json         the best trial's number, value, parameters, valid metrics and (reported only) test metrics

Selection uses the validation metric only; the best trial's test metrics are shown apart from it
and never compared across trials.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from kbuild.search.study import SearchFolder, write_atomic
from kbuild.spec.search_paths import trial_overrides

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: float | None
    duration_s: float | None
    params: dict[str, Any]
    """Spec values by path."""
    attrs: dict[str, Any]
    sampled: dict[str, Any] = field(default_factory=dict)
    """Optuna's values (choices of lists or mappings as JSON text)."""


@dataclass
class Summary:
    """The study as tables: every trial row, the best one, the importances."""

    meta: dict
    rows: list[TrialRow]
    best: TrialRow | None
    importances: dict[str, float] | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))


def collect(study: Any, spec: Any, meta: dict) -> Summary:
    """Rows for every started trial (not the queued ones), the best trial and the importances."""
    import optuna

    search = spec.search
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue
        rows.append(TrialRow(trial.number, trial.state.name, trial.value, _duration(trial),
                             {path: _decoded(search, path, v) for path, v in trial.params.items()},
                             dict(trial.user_attrs), dict(trial.params)))
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    best = None
    if complete:
        pick = max if meta["goal"] == "maximize" else min
        best = pick(complete, key=lambda r: (r.value, -r.number))
    counts = {state: sum(r.state == state for r in rows) for state in STATES}
    return Summary(meta, rows, best, _importances(study) if len(complete) >= 2 else None, counts)


def write_outputs(folder: SearchFolder, study: Any, spec: Any) -> Summary:
    """Rewrite every output file from the study (atomically: a reader never sees half a file)."""
    meta = folder.read_meta()
    summary = collect(study, spec, meta)
    params = parameter_columns(summary)
    write_atomic(folder.path / "trials.csv", _csv(summary, params))
    write_atomic(folder.path / "trials.md", markdown(summary))
    if summary.importances is not None:
        write_atomic(folder.path / "importances.json", json.dumps(summary.importances, indent=2))
    if summary.best is not None:
        _write_best(folder, spec, summary)
    return summary


def parameter_columns(summary: Summary) -> list[str]:
    """The search's parameters in spec order, then any that only older trials had."""
    columns = list(summary.meta["parameters"])
    for row in summary.rows:
        columns += [p for p in row.params if p not in columns]
    return columns


def markdown(summary: Summary) -> str:
    meta = summary.meta
    params = parameter_columns(summary)
    metric = meta["metric"]
    lines = [f"# Search {meta['study']}: {metric} ({meta['goal']})", "",
             f"Spec `{meta['spec']}`; sampler {meta['sampler']}, pruner {meta['pruner']}, seed {meta['seed']}. "
             + progress_text(summary), "",
             "| trial | state | " + metric + " | time (s) | epochs | trial peak RSS (MiB) | worker RSS (MiB) | "
             + " | ".join(params) + " |",
             "|" + "---|" * (7 + len(params))]
    for row in summary.rows:
        cells = [str(row.number), row.state, _number(row.value), _number(row.duration_s, 1),
                 str(row.attrs.get("epochs", "")), _number(row.attrs.get("rss_peak_mib"), 0),
                 _number(row.attrs.get("worker_rss_mib"), 0)]
        cells += [_param(row.params.get(p)) for p in params]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", best_text(summary)]
    if summary.importances:
        lines += ["", "## Parameter importances (Optuna's default evaluator, complete trials)", "",
                  "| parameter | importance |", "|---|---|"]
        lines += [f"| {p} | {v:.3f} |" for p, v in summary.importances.items()]
    failed = [r for r in summary.rows if r.state == "FAIL" and r.attrs.get("error")]
    if failed:
        lines += ["", "## Failed trials", ""] + [f"- trial {r.number}: {r.attrs['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def best_text(summary: Summary) -> str:
    best = summary.best
    if best is None:
        return "No trial has completed yet."
    metric = summary.meta["metric"]
    test = best.attrs.get("test") or {}
    shown = ", ".join(f"{k} {_number(v)}" for k, v in sorted(test.items()) if isinstance(v, int | float))
    text = f"Best: trial {best.number}, {metric} {_number(best.value)} (valid split; the only one selection sees)."
    if shown:
        text += f" Its test metrics, reported only: {shown}."
    return text


def progress_text(summary: Summary) -> str:
    counts = summary.counts
    running = f"; {counts['RUNNING']} running" if counts.get("RUNNING") else ""
    return (f"{summary.done} of {summary.meta['trials']} trials done ({counts['COMPLETE']} complete, "
            f"{counts['PRUNED']} pruned, {counts['FAIL']} failed{running}).")


def trial_line(summary: Summary, number: int) -> str:
    """`trial 3 COMPLETE val_accuracy=0.8412 in 41.2 s, 3 epochs, peak RSS 812 MiB: path=value ...`"""
    row = next(r for r in summary.rows if r.number == number)
    extra = ", ".join(x for x in (
        f"{row.attrs['epochs']} epoch(s)" if "epochs" in row.attrs else "",
        f"peak RSS {row.attrs['rss_peak_mib']:.0f} MiB" if row.attrs.get("rss_peak_mib") else "") if x)
    params = " ".join(f"{p}={_param(v)}" for p, v in row.params.items())
    error = f" ({row.attrs['error']})" if row.state == "FAIL" and row.attrs.get("error") else ""
    return (f"trial {row.number} {row.state} {summary.meta['metric']}={_number(row.value)} in "
            f"{_number(row.duration_s, 1)} s{', ' + extra if extra else ''}: {params}{error}")


def progress_line(summary: Summary, started: float) -> str:
    best = f"; best {summary.meta['metric']} {_number(summary.best.value)} (trial {summary.best.number})" if summary.best else ""
    return f"search: {progress_text(summary)[:-1]}{best}; {_clock(time.time() - started)} elapsed"


def _write_best(folder: SearchFolder, spec: Any, summary: Summary) -> None:
    best = summary.best
    resolved = folder.trial_dir(best.number) / "spec.yaml"
    if resolved.is_file():  # exactly what the trial trained with
        shutil.copyfile(resolved, folder.path / ".best.yaml.tmp")
        (folder.path / ".best.yaml.tmp").replace(folder.path / "best.yaml")
    else:  # the trial ran on another machine (shared RDB): resolve its overrides here
        import yaml

        from kbuild.tasks.checks import load_spec

        again = load_spec(summary.meta["spec"], [*summary.meta["overrides"], *trial_overrides(spec.search, best.sampled)])
        write_atomic(folder.path / "best.yaml", yaml.safe_dump(again.resolved(), sort_keys=False, allow_unicode=True))
    write_atomic(folder.path / "best.json", json.dumps({
        "number": best.number, "metric": summary.meta["metric"], "value": best.value, "params": best.params,
        "run": str(folder.trial_dir(best.number)), "valid": best.attrs.get("valid", {}),
        "test": best.attrs.get("test", {}),
    }, indent=2))


def _csv(summary: Summary, params: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "value", "duration_s", *(f"params.{p}" for p in params)])
    for row in summary.rows:
        writer.writerow([row.number, row.state, "" if row.value is None else repr(row.value),
                         "" if row.duration_s is None else round(row.duration_s, 2),
                         *(_csv_value(row.params.get(p)) for p in params)])
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _importances(study: Any) -> dict[str, float] | None:
    import optuna

    try:
        found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # e.g. every complete trial has the same parameters
        return None
    return {name: round(float(v), 6) for name, v in found.items()}


def _duration(trial: Any) -> float | None:
    if trial.duration is not None:
        return trial.duration.total_seconds()
    if trial.datetime_start is not None:  # still running
        import datetime as _dt

        return (_dt.datetime.now() - trial.datetime_start).total_seconds()
    return None


def _decoded(search: Any, path: str, value: Any) -> Any:
    space = search.parameters.get(path)
    try:
        return space.decode(value) if space is not None else value
    except ValueError:  # a choice removed from the spec since: show what was tried
        return value


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list | dict) or value is None else str(value)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"
