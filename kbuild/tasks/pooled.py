"""`PooledTask`: what the tasks that read whole texts and answer once per example share.

Classification, regression and multilabel pool the backbone's features into one vector and put a
dense head on it; any of them reads one text or a pair of texts (`data.columns: {text: sentence1,
text_pair: sentence2, label: label}`), which the tokenizer packs into one sequence `[CLS] a [SEP] b
[SEP]` with segment ids, as BERT reads pairs. The subclasses keep only their output layer, loss,
metrics and rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.blocks.pooling import POOLINGS
from kbuild.names import TEXT_PAIR_INPUT
from kbuild.tasks.base import Task
from kbuild.tasks.head import pooled_head, pooling_issues

if TYPE_CHECKING:
    from kbuild.spec import Spec


class PooledTask(Task):
    """A task with one pooled output per example, over one text or a pair."""

    optional_inputs = (TEXT_PAIR_INPUT,)
    owned_fields = (("preprocess", "truncation"),)
    # One small output per row: 128 rows of 128 tokens score in one batch.
    scoring_tokens = 16384
    head_type_issue = "{head!r} heads are for tagging; {task} ends in its own output layer: leave model.head.type unset"
    """What a spec that sets `model.head.type` (a tagger's `crf`) is told."""

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.head.type != "softmax":
            yield ("model", "head", "type"), self.head_type_issue.format(head=spec.model.head.type, task=self.name)
        yield from pooling_issues(spec)
        texts = len(self.input_names(spec))
        if texts > 1:
            if spec.preprocess.max_length < 2 * texts + 1:
                yield ("preprocess", "max_length"), (f"{texts} texts packed as [CLS] a [SEP] b [SEP] need "
                                                     f"max_length >= {2 * texts + 1}")
            if spec.model.embedding.chars is not None:
                yield ("model", "embedding", "chars"), "char features read one text; remove them for sentence pairs"

    def needs_start_token(self, spec: Spec) -> bool:
        return POOLINGS.get(spec.model.pooling).needs_start_token

    def pooled(self, features: Any, spec: Spec) -> Any:
        """The sequence pooled as `model.pooling` says, through `model.head`'s dense layers."""
        return pooled_head(features, spec)
