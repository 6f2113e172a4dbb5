"""The section registry and what every section builder receives (options, prediction cache)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from kbuild.registry import Registry
from kbuild.report.content import Section
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import PredictionCache


class ReportOptions(BaseModel):
    """How much of each kind the report shows.

    Args:
        max_examples: predictions are computed on at most this many examples of the split (the
            first ones, in file order).
        mistakes: rows of the most-confident-mistakes table.
        sentences: tagged sentences shown with their entities highlighted.
        attention_examples: validation examples with an attention heatmap.
        samples: generated samples, translations or reconstructions shown.
        bins: confidence bins of the reliability diagram.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_examples: int = Field(5000, ge=1)
    mistakes: int = Field(10, ge=0)
    sentences: int = Field(6, ge=0)
    attention_examples: int = Field(4, ge=0)
    samples: int = Field(8, ge=0)
    bins: int = Field(10, ge=2, le=50)


@dataclass(frozen=True)
class SectionContext:
    """What a section builder gets besides the run: the options and the run's prediction cache."""

    options: ReportOptions
    cache: PredictionCache


SectionBuilder = Callable[[RunRecord, SectionContext], "list[Section]"]

TASK_SECTIONS: Registry[list[SectionBuilder]] = Registry("report section list")
"""task name -> the builders of its task-specific sections, in page order."""
