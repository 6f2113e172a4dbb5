"""`eval:` how a run's generated text is scored (seq2seq): which metrics compare the decoded
outputs of the valid and test splits with their targets.

    eval: {metrics: [rouge]}           # English summaries: ROUGE-1/2/L, stemmed words
    eval: {metrics: [bleu, rouge_char]}  # Chinese: BLEU and character-level ROUGE

The names are checked against the task's registry of decoded metrics (kbuild.tasks.decoded_metrics)
by the task checks, so this section stays task-free.
"""

from __future__ import annotations

from pydantic import Field

from kbuild.spec.base import StrictModel


class EvalSpec(StrictModel):
    metrics: list[str] = Field(default_factory=lambda: ["bleu"], min_length=1)
    """Scores of the decoded outputs against the targets: `bleu` (sacrebleu's corpus BLEU), `rouge`
    (ROUGE-1/2/L F1 over stemmed English words, the `rouge-score` package), `rouge_char` (ROUGE over
    characters, for Chinese). Each adds its names to the results (`bleu`, `rouge1`, `rouge2`,
    `rougeL`), and `train.monitor` may select on `val_` of any of them (`val_rougeL`)."""
