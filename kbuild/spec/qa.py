"""`qa:` how an extractive QA model (`task: extractive_qa`) turns span scores into answers and
how they are scored. The windows it reads are `preprocess.max_length`, `preprocess.doc_stride`
and `preprocess.max_query_length`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kbuild.spec.base import StrictModel


class QASpec(StrictModel):
    """Decoding and scoring of answer spans.

    Examples:
        >>> QASpec(n_best=20, max_answer_length=30, metric="cmrc")
    """

    n_best: int = Field(default=20, ge=1, le=1000)
    """Candidate spans kept per window before the windows of a question are merged (over-fetched
    per window, so a question's best span is never lost to another window's top list)."""
    max_answer_length: int = Field(default=30, ge=1, le=512)
    """Longest answer, in tokens (end - start + 1)."""
    null_threshold: float | None = None
    """SQuAD v2: answer `""` when the best null score ([CLS] start + end) beats the best span's
    score by more than this; omitted, every question gets a span (SQuAD v1.1, CMRC)."""
    metric: Literal["squad", "cmrc"] = "squad"
    """`squad`: the official v1.1 exact match and token F1 (lower-cased, punctuation and articles
    removed); `cmrc`: CMRC 2018's (Chinese characters, English words and numbers kept whole, F1 from
    the longest common substring)."""
