"""Extractive question answering (SQuAD, CMRC 2018): the answer is a span of the context.

Each example holds a `question` and a `context` (`format: squad`, or any reader with those columns
and a label of `(start, text)` answers). Contexts are cut into overlapping windows `[CLS] question
[SEP] context piece [SEP]` (`kbuild.data.qa_windows`, `preprocess.max_length`, `doc_stride`,
`max_query_length`); every window is one training row whose target is the answer's first and last
token, or `[CLS]` for both when the window does not hold the whole answer (BERT's recipe). The model
puts start and end logits on every token of the backbone's features (`model.backbone`, or kbuild's
own embedding and blocks with a segment embedding); the loss is the mean of the two
cross-entropies. Answers are decoded inside the graph (`kbuild.tasks.qa_decoding`), so the export
answers a raw question and a context of any length, and evaluation scores exactly what it serves:
`exact_match` and `f1` (`qa.metric`: SQuAD's or CMRC's), `val_f1` at every epoch end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.errors import DataError
from kbuild.tasks.base import TASKS, SplitData, Task, text_function

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.data.qa_windows import WindowShape
    from kbuild.spec import Spec
    from kbuild.spec.qa import QASpec
    from kbuild.tasks.bundle import Assets, DataBundle

QUESTION, CONTEXT = "question", "context"
SCORES = ("exact_match", "f1")
WINDOW_BATCH = 256
"""Questions cut into windows per call when a split's rows are built."""


def qa_settings(spec: Spec) -> QASpec:
    """`spec.qa`, or its defaults when the spec leaves the section out."""
    from kbuild.spec.qa import QASpec

    return spec.qa or QASpec()


def window_shape(spec: Spec) -> WindowShape:
    from kbuild.data.qa_windows import WindowShape

    p = spec.preprocess
    return WindowShape(p.max_length, p.doc_stride, p.max_query_length)


class ExtractiveQATask(Task):
    name = "extractive_qa"
    inputs = (QUESTION, CONTEXT)
    uses_labels = False
    default_monitor = "val_f1"
    owned_fields = (("preprocess", "doc_stride"), ("preprocess", "max_query_length"), ("qa",))

    def metric_names(self, spec: Spec) -> tuple[str, ...]:
        """The loss, and the answer scores the epoch callback adds (`val_f1`, `val_exact_match`)."""
        return (*super().metric_names(spec), *SCORES, *(f"val_{name}" for name in SCORES))

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        p = spec.preprocess
        room = p.max_length - 3 - p.max_query_length
        if room < 1:
            yield ("preprocess", "max_query_length"), (
                f"max_length {p.max_length} leaves no room for context after [CLS], a question of "
                f"{p.max_query_length} tokens and two [SEP]; expected max_query_length < {p.max_length - 3}")
        elif p.doc_stride >= room:
            # A stride as large as the window never advances (huggingface/tokenizers#944).
            yield ("preprocess", "doc_stride"), (
                f"expected doc_stride < {room}, the context tokens a window holds (max_length {p.max_length} - 3 - "
                f"max_query_length {p.max_query_length}); received {p.doc_stride}")
        if spec.model.head.type != "softmax":
            yield ("model", "head", "type"), "extractive_qa ends in start/end logits: leave model.head.type unset"
        if spec.model.pooling != type(spec.model).model_fields["pooling"].default:
            yield ("model", "pooling"), "extractive_qa scores every token and pools nothing; remove model.pooling"
        if spec.model.embedding.chars is not None:
            yield ("model", "embedding", "chars"), "char features read one text; remove them for question + context"

    # --- data ----------------------------------------------------------------------------------
    def label_vocabulary(self, train: ReadResult) -> list[str]:
        """None: an answer is a span, not a class."""
        return []

    def texts(self, split: ReadResult) -> list[str]:
        """Questions and each distinct context once (a context has several questions)."""
        return [*split.texts(QUESTION), *dict.fromkeys(split.texts(CONTEXT))]

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """One row per window: `token_ids`, `segment_ids` and the (start, end) positions of the
        question's first locatable answer in it, (0, 0) when the window does not hold it."""
        import numpy as np

        from kbuild.data.qa_windows import answer_positions, cut_windows
        from kbuild.names import SEGMENT_IDS, TOKEN_IDS

        shape, examples = window_shape(spec), split.examples
        features: dict[str, list] = {TOKEN_IDS: [], SEGMENT_IDS: []}
        labels = []
        for begin in range(0, len(examples), WINDOW_BATCH):
            chunk = examples[begin:begin + WINDOW_BATCH]
            windows = {name: value.numpy() for name, value in cut_windows(
                bundle.tokenizer, shape, [e[QUESTION] for e in chunk], [e[CONTEXT] for e in chunk]).items()}
            spans = [answer_bytes(example, split.source, key) for example in chunk]
            for row, owner in enumerate(windows["example"]):
                labels.append(answer_positions(windows["starts"][row], windows["ends"][row], spans[owner]))
            for name in features:
                features[name].append(windows[name])
        arrays = {name: np.concatenate(parts) for name, parts in features.items()}
        return self.row_data(arrays, np.asarray(labels, np.int32).reshape(-1, 2), spec, train)

    # --- model ---------------------------------------------------------------------------------
    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        from kbuild.layers.spans import SpanLogits
        from kbuild.tasks.head import dense_head

        return SpanLogits(name="span_logits")(dense_head(features, spec))

    def loss(self, spec: Spec) -> Any:
        from kbuild.layers.spans import SpanLoss

        return SpanLoss()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        return []

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        """`val_f1` and `val_exact_match` (decoded answers on valid; train without one) in every
        epoch's logs, before the checkpoint and early stopping read them."""
        from kbuild.tasks.qa_callback import AnswerScores

        return [AnswerScores(self, bundle, spec, "valid" if "valid" in bundle.datasets else "train")]

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """The window loss, and exact match / F1 of the decoded answers against every reference."""
        metrics = model.evaluate(bundle.datasets[split], verbose=0, return_dict=True)
        return {"loss": float(metrics["loss"]), **self.score(model, bundle, bundle.examples[split], spec)}

    def scores_from_validation(self, logs, bundle: DataBundle, split: str, spec: Spec) -> dict | None:
        """The saved epoch's `val_loss`, `val_exact_match` and `val_f1` are `evaluate`'s: the same
        windows and the same in-graph answers (SQuAD's 2-epoch MiniLM run spent minutes after
        training answering valid again). Not for SQuAD v2 data: its final score adds HasAns/NoAns."""
        names = ("loss", "exact_match", "f1")
        if not all(f"val_{name}" in logs for name in names):
            return None
        if any(text == "" for example in bundle.examples[split] for _, text in example.label):
            return None
        return {name: float(logs[f"val_{name}"]) for name in names}

    def score(self, model: Any, assets: Assets, examples: list, spec: Spec, answer: Any = None) -> dict[str, float]:
        """Exact match and F1 (`qa.metric`) of `model`'s answers to `examples`; `answer`: an
        `answer_function` of `model` made before, reused (the per-epoch `val_f1`)."""
        from kbuild.tasks.qa_decoding import predict_answers
        from kbuild.tasks.qa_scoring import score

        answer = answer or self.answer_function(model, assets, spec)
        predicted = predict_answers(answer, [e[QUESTION] for e in examples], [e[CONTEXT] for e in examples])
        references = [[text for _, text in example.label] for example in examples]
        return score(qa_settings(spec).metric, predicted, references)

    # --- serving -------------------------------------------------------------------------------
    def answer_function(self, model: Any, assets: Assets, spec: Spec) -> Any:
        """A tf.function `(question, context)` -> `answer`, `score`, `start`, `end`."""
        from kbuild.tasks.qa_decoding import answer_graph

        answer = answer_graph(assets.tokenizer, model, window_shape(spec), qa_settings(spec),
                              trim=spec.preprocess.bucketing)
        return text_function(self.inputs, lambda texts: answer(texts[QUESTION], texts[CONTEXT]))

    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(question, context)` -> `answer` (string), `score`, `start`, `end`
        (character offsets into the context), windows and decoding inside the graph."""
        function = self.answer_function(model, assets, spec)
        return {"serving_default": function}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{QUESTION: question, "answer": outputs["answer"][i].decode("utf-8"),
                 "score": round(float(outputs["score"][i]), 4),
                 "start": int(outputs["start"][i]), "end": int(outputs["end"][i])}
                for i, question in enumerate(texts)]


def answer_bytes(example: Any, source: str, key: str) -> tuple[int, int] | None:
    """The byte span `[begin, end)` of the example's first answer with a start (the one trained
    on), or None for an unanswerable question."""
    label = example.label
    if not isinstance(label, tuple) or not label:
        raise DataError(f"{key}: extractive_qa needs answers as (start, text) pairs (data.format: squad); "
                        f"received {label!r}", source, example.line)
    start, text = next(((s, t) for s, t in label if s >= 0), (-1, ""))
    if start < 0:
        return None
    context = example[CONTEXT]
    begin = len(context[:start].encode("utf-8"))
    return begin, begin + len(text.encode("utf-8"))


TASKS.register("extractive_qa")(ExtractiveQATask())

