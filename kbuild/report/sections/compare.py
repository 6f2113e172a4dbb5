"""Several runs on one page: a comparison table (metrics, parameters, time, speed), their learning
curves overlaid per metric, and each run's summary and metrics. Runs of different tasks compare
on what they share; a metric one run lacks is shown as —."""

from __future__ import annotations

from kbuild.report import figures
from kbuild.report.content import Figure, Section, Table
from kbuild.report.loader import RunRecord
from kbuild.report.sections import common

SPLIT_ORDER = ("valid", "test", "train")


def runs_table(records: list[RunRecord]) -> Table:
    rows = [[r.label, r.task, r.results.get("parameters"), r.results.get("train_time_s"), r.results.get("samples_per_second"),
             len(r.epochs), common.best_epoch(r)] for r in records]
    return Table(["run", "task", "parameters", "train time (s)", "samples/s", "epochs", "best epoch"], rows,
                 caption="Size, training time and speed.", decimals={"train time (s)": 1, "samples/s": 0})


def metrics_table(records: list[RunRecord]) -> Table:
    """One row per split and metric, one column per run: runs side by side, however many metrics."""
    splits = [s for s in SPLIT_ORDER if any(s in r.metrics for r in records)]
    rows = []
    for split in splits:
        names = sorted({n for r in records for n, v in r.metrics.get(split, {}).items() if not isinstance(v, dict)},
                       key=lambda name: (name != "loss", name))
        rows += [[f"{split} {name}", *(_scalar(r.metrics.get(split, {}).get(name)) for r in records)] for name in names]
    return Table(["metric", *(r.label for r in records)], rows,
                 caption="Final metrics per split (results.json); — where a run has no such metric.")


def _scalar(value):
    return None if isinstance(value, dict) else value


def overlaid_curves(records: list[RunRecord]) -> Figure | None:
    """Per metric, each run's valid curve (train when a run has no valid split)."""
    names = sorted({n for r in records for n in common.metric_names(r)}, key=lambda name: (name != "loss", name))
    panels, columns, rows = [], ["run", "epoch"], {}
    for name in names:
        curves = []
        for record in records:
            key = f"val_{name}" if any(f"val_{name}" in e.values for e in record.epochs) else name
            points = [(e.number, e.values[key]) for e in record.epochs if key in e.values]
            if points:
                curves.append(figures.Curve(f"{record.name} ({key})", [p[0] for p in points], [p[1] for p in points]))
                for epoch, value in points:
                    rows.setdefault((record.label, epoch), {})[name] = value
        if curves:
            panels.append(figures.Panel(name, curves))
    if not panels:
        return None
    shown = [p.title for p in panels]
    table = Table([*columns, *shown], [[run, epoch, *(values.get(n) for n in shown)] for (run, epoch), values in rows.items()])
    return Figure(figures.panels(panels, "epoch"), "Learning curves of every run overlaid, metric by metric "
                  "(the valid value where the run has a valid split).", table)


def comparison_sections(records: list[RunRecord]) -> list[Section]:
    overlaid = overlaid_curves(records)
    result = [Section("comparison", "Comparison", [runs_table(records), metrics_table(records)])]
    if overlaid is not None:
        result.append(Section("compare-curves", "Learning curves, overlaid", [overlaid]))
    for number, record in enumerate(records, start=1):
        for section in (*common.summary(record), *common.metrics(record)):
            result.append(Section(f"run{number}-{section.key}", f"{record.label}: {section.title.lower()}", section.blocks))
    return result
