"""`eval:` how a finished run is scored: how many train rows its final train metrics read, and
(seq2seq) which metrics compare the decoded outputs of the valid and test splits with their targets.

    eval: {train_sample: 2000}         # the default: train metrics from 2,000 seeded rows
    eval: {train_sample: all}          # every train row (as long as an epoch without the backward pass)
    eval: {train_sample: 0}            # no final train score (a large model's short fine-tune)
    eval: {metrics: [rouge]}           # English summaries: ROUGE-1/2/L, stemmed words
    eval: {metrics: [bleu, rouge_char]}  # Chinese: BLEU and character-level ROUGE

The names are checked against the task's registry of decoded metrics (kbuild.tasks.decoded_metrics)
by the task checks, so this section stays task-free.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kbuild.spec.base import StrictModel

TRAIN_SAMPLE = 2000
"""Train rows the final train metrics read by default: enough for a fit / overfit reading to the
second decimal (a binomial standard error under 0.011), a fraction of a minute even for a 22 M
parameter encoder on 2 cores, where scoring SST-2's 67k rows took longer than the fine-tune."""


class EvalSpec(StrictModel):
    train_sample: Annotated[int, Field(ge=0)] | Literal["all"] = TRAIN_SAMPLE
    """Train rows (examples, not windows) the final train metrics are computed on: a seeded sample of
    this many when the split is larger, `all`, or 0 for no final train score (Hugging Face's Trainer
    scores none; for a 100 M-parameter model's short fine-tune a forward pass over rows costs a third
    of training on them). valid and test are always scored in full. The sample is recorded in
    results.json (`scored_rows`) and shown by `kbuild evaluate` and the report."""
    metrics: list[str] = Field(default_factory=lambda: ["bleu"], min_length=1)
    """Scores of the decoded outputs against the targets: `bleu` (sacrebleu's corpus BLEU), `rouge`
    (ROUGE-1/2/L F1 over stemmed English words, the `rouge-score` package), `rouge_char` (ROUGE over
    characters, for Chinese). Each adds its names to the results (`bleu`, `rouge1`, `rouge2`,
    `rougeL`), and `train.monitor` may select on `val_` of any of them (`val_rougeL`)."""
