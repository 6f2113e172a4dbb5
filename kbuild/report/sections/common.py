"""Sections every run has: summary, learning curves, metrics per split. They read only the run
folder's files, never predictions, so a comparison or a search page reuses them without a context."""

from __future__ import annotations

from kbuild.report import figures
from kbuild.report.content import Code, Figure, Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.sections.base import SectionContext
from kbuild.spec.train import monitor_mode

NOT_CURVES = ("learning_rate", "epoch_time_s")
"""metrics.jsonl fields that are not train/valid metric pairs."""


def summary(record: RunRecord, context: SectionContext | None = None) -> list[Section]:
    results = record.results
    spec = record.spec
    train = spec.get("train") or {}
    rows = [
        ["name", record.name],
        ["task", record.task],
        ["run folder", str(record.folder.path)],
        ["parameters (trainable / total)", _parameters(results)],
        ["device", results.get("device")],
        ["strategy", f"{results.get('strategy')} ({results.get('replicas', 1)} replica(s))"],
        ["precision", results.get("precision")],
        ["epochs / steps", f"{len(record.epochs)} / {results.get('steps')}"],
        ["batch size", str(results.get("global_batch_size", train.get("batch_size")))],
        ["train time (s)", _fixed(results.get("train_time_s"), 1)],
        ["wall time (s)", _fixed(results.get("wall_time_s"), 1)],
        ["after training (s): final scoring", _fixed(results.get("after_training_s"), 1)],
        ["samples/s", _fixed(results.get("samples_per_second"), 0)],
        ["kbuild version", results.get("kbuild_version")],
        ["spec hash", results.get("spec_hash")],
    ]
    counts = results.get("counts") or {}
    skipped = results.get("skipped_rows") or {}
    data = Table(["split", "examples", "skipped rows"], [[s, n, skipped.get(s, 0)] for s, n in counts.items()],
                 caption="Examples per split (windows for a language model).")
    blocks = [Table(["", "value"], rows), data]
    labels = results.get("labels") or []
    if labels and record.task != "regression":
        blocks.append(Text(f"{len(labels)} labels: {', '.join(map(str, labels[:60]))}{' …' if len(labels) > 60 else ''}"))
    blocks.append(Code(record.spec_text, "resolved spec (spec.yaml)"))
    return [Section("summary", "Summary", blocks)]


def _fixed(value: float | None, decimals: int) -> str:
    """A duration or rate at the precision it is worth reading (the table's 4 decimals are for metrics)."""
    return "—" if value is None else f"{value:,.{decimals}f}"


def _parameters(results: dict) -> str:
    total = results.get("parameters")
    trainable = results.get("trainable_parameters")
    if total is None:
        return "—"
    return f"{trainable:,} / {total:,}" if trainable is not None else f"— / {total:,}"


def metric_names(record: RunRecord) -> list[str]:
    """The metrics logged per epoch, without their `val_` twins: loss first, then by name."""
    names = {key.removeprefix("val_") for epoch in record.epochs for key in epoch.values if key not in NOT_CURVES}
    return sorted(names, key=lambda name: (name != "loss", name))


def best_epoch(record: RunRecord) -> int | None:
    """The epoch train.monitor chose (model.keras holds its weights), or None if it was not logged."""
    monitor = record.monitor
    logged = [(e.number, e.values[monitor]) for e in record.epochs if monitor in e.values]
    if not logged:
        monitor = monitor.removeprefix("val_")  # a run without a valid split monitors the train value
        logged = [(e.number, e.values[monitor]) for e in record.epochs if monitor in e.values]
    if not logged:
        return None
    pick = max if monitor_mode(monitor) == "max" else min
    return pick(logged, key=lambda item: item[1])[0]


def curves(record: RunRecord, context: SectionContext | None = None) -> list[Section]:
    if not record.epochs:
        return [Section("curves", "Learning curves", [Text("metrics.jsonl has no epochs: nothing to plot.")])]
    names = metric_names(record)
    panels, columns = [], ["epoch"]
    for name in names:
        lines = []
        for key, label in ((name, "train"), (f"val_{name}", "valid")):
            points = [(e.number, e.values[key]) for e in record.epochs if key in e.values]
            if points:
                lines.append(figures.Curve(label, [p[0] for p in points], [p[1] for p in points]))
                columns.append(key)
        panels.append(figures.Panel(name, lines))
    learning_rates = [(e.number, e.values["learning_rate"]) for e in record.epochs if "learning_rate" in e.values]
    if learning_rates:
        panels.append(figures.Panel("learning rate", [figures.Curve("end of epoch", *zip(*learning_rates, strict=True))]))
        columns.append("learning_rate")
    best = best_epoch(record)
    svg = figures.panels(panels, "epoch", marker=best, marker_label=f"best epoch ({best})" if best else "")
    rows = [[e.number, *(e.values.get(c) for c in columns[1:])] for e in record.epochs]
    caption = (f"Every metric per epoch, train against valid, and the learning rate at the end of each epoch. "
               f"The dashed line marks the best epoch by {record.monitor} (epoch {best}), whose weights model.keras holds."
               if best else "Every metric per epoch, train against valid, and the learning rate.")
    return [Section("curves", "Learning curves", [Figure(svg, caption, Table(columns, rows))])]


def metrics(record: RunRecord, context: SectionContext | None = None) -> list[Section]:
    splits = record.metrics
    names = sorted({n for m in splits.values() for n, v in m.items() if not isinstance(v, dict)},
                   key=lambda name: (name != "loss", name))
    scored = record.results.get("scored_rows") or {}
    rows = [[_split_label(split, scored.get(split)), *(values.get(n) for n in names)] for split, values in splits.items()]
    table = Table(["split", *names], rows, caption="Final metrics of the best model per split (results.json); a "
                  "split scored on a seeded sample (eval.train_sample) says how many of its rows.")
    return [Section("metrics", "Metrics per split", [table])]


def _split_label(split: str, scored: dict | None) -> str:
    """`train (sample of 2,000 of 67,349 rows)` where the final scores read a sample; else the name."""
    if not scored or scored.get("rows", 0) >= scored.get("of", 0):
        return split
    return f"{split} (sample of {scored['rows']:,} of {scored['of']:,} rows)"


RUN_SECTIONS = (summary, curves, metrics)
