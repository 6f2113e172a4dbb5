"""Which sections a run's report has: the common ones for every run, then those its task
registers in `TASK_SECTIONS` (one module per kind of task). Adding a task's report is one module
registering its list of builders: `TASK_SECTIONS.register("tagging")([sections])`."""

from __future__ import annotations

from kbuild.report.content import Section
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import PredictionCache
from kbuild.report.sections import (  # noqa: F401  (registration side effect)
    classification,
    common,
    generative,
    multilabel,
    qa,
    regression,
    tagging,
)
from kbuild.report.sections.base import TASK_SECTIONS, ReportOptions, SectionContext

__all__ = ["TASK_SECTIONS", "ReportOptions", "SectionContext", "run_sections"]


def run_sections(record: RunRecord, options: ReportOptions) -> list[Section]:
    """Every section of one run's report: summary, learning curves, metrics, then the task's."""
    context = SectionContext(options, PredictionCache(record, options.max_examples))
    builders = [*common.RUN_SECTIONS]
    if record.task in TASK_SECTIONS:
        builders += TASK_SECTIONS.get(record.task)
    return [section for build in builders for section in build(record, context)]
