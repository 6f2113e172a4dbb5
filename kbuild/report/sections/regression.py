"""Regression: predicted against true values, and the residuals."""

from __future__ import annotations

import numpy as np

from kbuild.report import figures
from kbuild.report.content import Figure, Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext


def predicted_values(run: LoadedRun) -> dict:
    examples = run.examples
    values = np.asarray(run.predict(run.model, "predicted"), np.float64).reshape(-1)[: len(examples)]
    return {"texts": [e.text for e in examples], "true": [float(e.label) for e in examples],
            "predicted": np.round(values, 6).tolist()}


def sections(record: RunRecord, context: SectionContext) -> list[Section]:
    split = report_split(record)
    if split is None:
        return [Section("predictions", "Predictions", [Text("The run has no split to predict on.")])]
    data = context.cache.get("values", split, predicted_values)
    true, predicted = np.asarray(data["true"]), np.asarray(data["predicted"])
    residuals = predicted - true
    n = len(true)
    pearson = float(np.corrcoef(true, predicted)[0, 1]) if n > 1 and true.std() and predicted.std() else float("nan")
    stats = Table(["examples", "MAE", "RMSE", "mean residual", "Pearson r"],
                  [[n, float(np.abs(residuals).mean()) if n else None, float(np.sqrt((residuals**2).mean())) if n else None,
                    float(residuals.mean()) if n else None, pearson]],
                  caption=f"On the {n:,} examples of the {split} split.")
    points = Table(["text", "true", "predicted", "residual"],
                   [[t, a, b, b - a] for t, a, b in zip(data["texts"], data["true"], data["predicted"], strict=True)])
    scatter = Figure(figures.scatter(true.tolist(), predicted.tolist(), "true", "predicted", "predicted vs true"),
                     f"Each {split} example's prediction against its true value; the dashed line is a perfect prediction.",
                     points)
    bins = int(np.clip(np.sqrt(max(n, 1)), 5, 40))
    counts, edges = np.histogram(residuals, bins=bins) if n else (np.zeros(0), np.zeros(1))
    histogram = Figure(figures.histogram(residuals.tolist(), bins, "predicted − true", "residuals"),
                       "Distribution of the residuals (predicted minus true); centred on 0 means no bias.",
                       Table(["from", "to", "examples"], [[float(a), float(b), int(c)] for a, b, c in
                                                         zip(edges[:-1], edges[1:], counts, strict=True)]))
    worst = np.argsort(-np.abs(residuals), kind="stable")[: context.options.mistakes]
    errors = Table(["text", "true", "predicted", "residual"],
                   [[data["texts"][i], float(true[i]), float(predicted[i]), float(residuals[i])] for i in worst],
                   caption="The largest errors.")
    return [Section("regression", "Predicted vs true", [stats, scatter, histogram]),
            Section("mistakes", "Largest errors", [errors])]


TASK_SECTIONS.register("regression")([sections])
