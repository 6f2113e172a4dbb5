"""A search folder (`kbuild tune`): the trials table, the optimisation history (each trial's value
and the best so far), parameter importances, and the best trial's curves."""

from __future__ import annotations

from kbuild.report import figures
from kbuild.report.content import Figure, Section, Table, Text
from kbuild.report.loader import TRIAL_STATES, SearchRecord
from kbuild.report.sections import common


def overview(search: SearchRecord) -> Section:
    states = {state: sum(t.state == state for t in search.trials) for state in TRIAL_STATES}
    best = search.best
    rows = [["metric", search.metric], ["goal", search.goal], ["spec", search.spec or "—"],
            ["trials", len(search.trials)], *([[f"trials {s.lower()}", n] for s, n in states.items()]),
            ["best trial", best.number if best else "—"], ["best value", best.value if best else None]]
    blocks = [Table(["", "value"], rows)]
    if best is not None and best.params:
        blocks.append(Table(["parameter", "value"], sorted(best.params.items()), caption="The best trial's parameters."))
    return Section("search", "Search", blocks)


def trials_table(search: SearchRecord) -> Section:
    names = sorted({name for trial in search.trials for name in trial.params})
    rows = [[t.number, t.state, t.value, t.duration_s, *(t.params.get(n, "") for n in names)] for t in search.trials]
    table = Table(["trial", "state", search.metric, "duration (s)", *names], rows,
                  caption="Every trial (trials.csv); a pruned or failed trial has no final value.",
                  decimals={"duration (s)": 1})
    return Section("trials", "Trials", [table])


def history(search: SearchRecord) -> Section:
    done = sorted((t for t in search.trials if t.state == "COMPLETE" and t.value is not None), key=lambda t: t.number)
    if not done:
        return Section("history", "Optimisation history", [Text("No trial has completed yet.")])
    pick = max if search.goal == "maximize" else min
    best, running = [], None
    for trial in done:
        running = trial.value if running is None else pick(running, trial.value)
        best.append(running)
    pruned = [(t.number, t.value) for t in search.trials if t.state == "PRUNED" and t.value is not None]
    figure = Figure(
        figures.history([t.number for t in done], [t.value for t in done], best, pruned, search.metric,
                        f"{search.goal} {search.metric}"),
        f"Each complete trial's {search.metric} in the order trials started, and the best so far ({search.goal}).",
        Table(["trial", search.metric, "best so far"], [[t.number, t.value, b] for t, b in zip(done, best, strict=True)]),
    )
    return Section("history", "Optimisation history", [figure])


def importances(search: SearchRecord) -> Section:
    if not search.importances:
        return Section("importances", "Parameter importances", [Text("importances.json is absent: the search did not "
                                                                     "compute them (too few complete trials?).")])
    ranked = sorted(search.importances.items(), key=lambda item: -item[1])
    figure = Figure(figures.bars([n for n, _ in ranked], [v for _, v in ranked], "importance", "parameter importances"),
                    "How much of the variation in the objective each parameter explains (importances.json).",
                    Table(["parameter", "importance"], [[n, v] for n, v in ranked]))
    return Section("importances", "Parameter importances", [figure])


def best_trial_curves(search: SearchRecord) -> list[Section]:
    best = search.best
    record = search.runs.get(best.number) if best else None
    if record is None:
        return []
    return [Section("best-curves", f"Best trial ({best.number}): learning curves", section.blocks)
            for section in common.curves(record)]


def search_sections(search: SearchRecord) -> list[Section]:
    return [overview(search), trials_table(search), history(search), importances(search), *best_trial_curves(search)]
