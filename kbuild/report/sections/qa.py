"""Extractive QA: exact match and F1 on the reported split, broken down by question word and by the
reference answer's length, and the worst mistakes with the answers marked in their contexts.

The answers are the run's own: the task's `answer_function` (the graph the export serves) over the
split's questions, computed once and kept in the prediction cache. Each question is scored with
`qa.metric`'s exact match and F1 (`kbuild.tasks.qa_scoring`), and every row of every table is the
mean over its questions, so the breakdowns add up to the overall numbers, which are the task's own
`evaluate` scores of the same questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kbuild.report.content import Passage, Passages, Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.passages import marked_context
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.question_words import KINDS, question_kind
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext
from kbuild.tasks.qa_scoring import SCORERS, QuestionScore, question_scores, summarize

ANSWER_BATCH = 64
"""Questions per call of the answer function (the batch `evaluate` answers in)."""
LENGTH_BUCKETS = (("0 (no answer)", 0, 0), ("1", 1, 1), ("2–3", 2, 3), ("4–6", 4, 6), ("7+", 7, None))
"""(label, fewest, most tokens) of a reference answer."""
ALL = "all"


def predicted_answers(run: LoadedRun) -> dict:
    """Each question of the split's first examples with its references and the run's answer; each
    distinct context stored once (a SQuAD paragraph has about five questions)."""
    from kbuild.progress import Progress
    from kbuild.tasks import TASKS
    from kbuild.tasks.extractive_qa import CONTEXT, QUESTION, qa_settings
    from kbuild.tasks.qa_decoding import predict_spans

    answer = TASKS.get(run.spec.task).answer_function(run.model, run.bundle, run.spec)
    examples = run.examples
    contexts = list(dict.fromkeys(example[CONTEXT] for example in examples))
    index = {context: i for i, context in enumerate(contexts)}
    progress, spans = Progress(len(examples), label="answered"), []
    for begin in range(0, len(examples), ANSWER_BATCH):
        chunk = examples[begin:begin + ANSWER_BATCH]
        spans += predict_spans(answer, [e[QUESTION] for e in chunk], [e[CONTEXT] for e in chunk], ANSWER_BATCH)
        progress.update(len(chunk))
    progress.close()
    rows = [{"question": example[QUESTION], "context": index[example[CONTEXT]],
             "references": [[start, text] for start, text in example.label], **span}
            for example, span in zip(examples, spans, strict=True)]
    return {"metric": qa_settings(run.spec).metric, "contexts": contexts, "rows": rows}


@dataclass(frozen=True)
class Answered:
    """One question, its references `(start, text)` (start -1: not found in the context) and the
    model's answer at `[start, end)` of the context."""

    question: str
    context: str
    references: list[tuple[int, str]]
    answer: str
    score: float
    start: int
    end: int


class QAPredictions:
    """The cached answers of one run, each scored with the run's `qa.metric`."""

    def __init__(self, data: dict):
        self.metric: str = data["metric"]
        contexts = data["contexts"]
        self.rows = [Answered(r["question"], contexts[r["context"]], [(int(s), t) for s, t in r["references"]],
                              r["answer"], float(r["score"]), int(r["start"]), int(r["end"])) for r in data["rows"]]
        self.scores = question_scores(self.metric, [r.answer for r in self.rows],
                                      [[text for _, text in r.references] for r in self.rows])

    def answer_length(self, row: Answered) -> int:
        """The first reference's length in the tokens F1 counts (SQuAD: normalised words; CMRC:
        Chinese characters and whole English words or numbers)."""
        text = row.references[0][1] if row.references else ""
        return len(SCORERS.get(self.metric).tokens(text))


def sections(record: RunRecord, context: SectionContext) -> list[Section]:
    split = report_split(record)
    if split is None:
        return [Section("qa-scores", "Exact match and F1", [Text("The run has no split to answer.")])]
    predictions = QAPredictions(context.cache.get("answers", split, predicted_answers))
    return [
        overall_section(record, split, predictions),
        question_word_section(split, predictions),
        answer_length_section(split, predictions),
        mistakes_section(split, predictions, context.options.mistakes),
    ]


def _scope(split: str, predictions: QAPredictions) -> str:
    return f"on the {len(predictions.rows):,} questions of the {split} split ({predictions.metric} metric)"


def overall_section(record: RunRecord, split: str, predictions: QAPredictions) -> Section:
    found = summarize(predictions.scores)
    names = list(found)
    saved = record.metrics.get(split) or {}
    # results.json counts a QA split in windows; the questions its scores read are its scored rows.
    scored = (record.results.get("scored_rows") or {}).get(split) or {}
    rows = [[f"{split}: answered for this report", len(predictions.rows), *(found[n] for n in names)],
            [f"{split}: results.json", scored.get("rows"), *(saved.get(n) for n in names)]]
    caption = (f"Exact match and F1 (percent) {_scope(split, predictions)}: each question's best score over its "
               "references, averaged. The report answers at most --max-examples questions (the first ones), "
               "results.json the whole split; they agree when the split is no longer.")
    return Section("qa-scores", "Exact match and F1", [Table(["split", "questions", *names], rows, caption=caption)])


def breakdown(groups: Sequence[str], order: Sequence[str], scores: Sequence[QuestionScore]) -> list[list]:
    """One row per group with questions (in `order`): questions, share, exact match, F1; then `all`."""
    total = len(scores)
    rows = []
    for name in [*order, ALL]:
        members = list(scores) if name == ALL else [s for g, s in zip(groups, scores, strict=True) if g == name]
        if members:
            found = summarize(members)
            rows.append([name, len(members), len(members) / total, found["exact_match"], found["f1"]])
    return rows


def question_word_section(split: str, predictions: QAPredictions) -> Section:
    groups = [question_kind(row.question) for row in predictions.rows]
    table = Table(["question word", "questions", "share", "exact_match", "f1"],
                  breakdown(groups, KINDS, predictions.scores), decimals={"share": 3},
                  caption=f"Exact match and F1 by the question's first interrogative {_scope(split, predictions)}: "
                          "what, who (whom, whose), when, where, which, why, how, else other; Chinese questions by "
                          "a short list (什么 what, 谁 who, 什么时候 when, 哪里 where, 哪个 which, 为什么 why, "
                          "怎么/多少/几位 how, ...).")
    return Section("question-words", "By question word", [table])


def _length_bucket(length: int) -> str:
    return next(label for label, low, high in LENGTH_BUCKETS if length >= low and (high is None or length <= high))


def answer_length_section(split: str, predictions: QAPredictions) -> Section:
    groups = [_length_bucket(predictions.answer_length(row)) for row in predictions.rows]
    unit = "Chinese characters and whole English words or numbers" if predictions.metric == "cmrc" else \
        "words, articles and punctuation left out"
    table = Table(["answer length", "questions", "share", "exact_match", "f1"],
                  breakdown(groups, [label for label, _, _ in LENGTH_BUCKETS], predictions.scores),
                  decimals={"share": 3},
                  caption=f"Exact match and F1 by the length of the first reference answer, in the tokens F1 counts "
                          f"({unit}), {_scope(split, predictions)}.")
    return Section("answer-length", "By answer length", [table])


def mistakes_section(split: str, predictions: QAPredictions, count: int) -> Section:
    """The questions answered worst: lowest F1 first, the most confident first among equals."""
    wrong = [i for i, s in enumerate(predictions.scores) if not s.exact]
    wrong.sort(key=lambda i: (predictions.scores[i].f1, -predictions.rows[i].score))
    shown = [passage(predictions.rows[i], predictions.scores[i]) for i in wrong[:count]]
    if not shown:
        return Section("qa-mistakes", "Worst answers", [Text(f"No mistakes {_scope(split, predictions)}.")])
    caption = (f"The {len(shown)} worst of {len(wrong):,} answers that miss exact match {_scope(split, predictions)}, "
               "lowest F1 first (then the highest score). In each context the reference answer is green and the "
               "prediction underlined in orange; a long context is shown around them.")
    return Section("qa-mistakes", "Worst answers", [Passages(shown, caption)])


def passage(row: Answered, score: QuestionScore) -> Passage:
    """A question with its references (located ones marked `gold`) and its answer (`predicted`)."""
    spans = [(start, start + len(text), "gold") for start, text in dict.fromkeys(row.references) if start >= 0]
    spans.append((row.start, row.end, "predicted"))
    references = list(dict.fromkeys(text for _, text in row.references))
    return Passage(row.question, references, row.answer, score.f1, row.score, marked_context(row.context, spans))


TASK_SECTIONS.register("extractive_qa")([sections])
