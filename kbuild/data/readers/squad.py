"""`squad`: SQuAD v1.1 / v2.0 JSON and CMRC 2018 (the same layout), one example per question.

`{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text",
"answer_start"}], "is_impossible"?}]}]}]}`. Each question becomes an `Example` with the inputs
`question` and `context` and, as its label, the tuple of its answers as `(start, text)` pairs
(character offsets into the context, Python `str` indices; several per question in dev sets). A
SQuAD v2 question without an answer (`is_impossible`) has the one answer `NO_ANSWER`.

An `answer_start` that does not point at its text (5 of CMRC's trial answers, 200 of its dev ones)
is moved to the nearest occurrence of the text and counted in `ReadResult.repaired`. An answer whose
text does not occur in the context at all (193 of CMRC's dev answers, with `answer_start: -1`) stays
a reference text for scoring, with start -1, when another answer of its question has a span; a
question with no locatable answer is a bad row (`data.on_error`). A span is never trained on the
wrong characters: training reads the first answer with a start >= 0.

Each example's group is its article's title, so `data.holdout: article` holds out whole articles
(no paragraph of a held-out article is trained on).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kbuild.data.example import ReadResult
from kbuild.data.readers.base import ReadOptions, RowCollector, read_text, register_reader
from kbuild.errors import DataError

QUESTION, CONTEXT = "question", "context"
NO_ANSWER = (-1, "")
"""The one answer of an unanswerable (SQuAD v2) question."""


@register_reader("squad", extensions=())
def read_squad(path: Path, options: ReadOptions) -> ReadResult:
    """The questions of a SQuAD-layout file, in file order (see the module docstring)."""
    names = [name for name, _ in options.inputs]
    if sorted(names) != [CONTEXT, QUESTION]:
        raise DataError(f"{options.key}: format squad gives the inputs question and context; "
                        f"the task reads {', '.join(names)}")
    # One JSON document, often one line (SQuAD's train file is a 30 MB line): only the file's size
    # is bounded (`data.max_bytes`), not its lines.
    raw = read_text(path, replace(options, max_row_bytes=options.max_bytes))
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataError(f"invalid JSON ({error.msg} at column {error.colno})", str(path), error.lineno) from None
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise DataError('expected a SQuAD file: an object with a "data" list of articles', str(path), 1)
    lines = _LineFinder(raw)
    collector, groups, repaired = RowCollector(path, options), [], 0
    for number, article in enumerate(articles):
        title = str(article.get("title") or f"article {number}")
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context", "")
            for qa in paragraph.get("qas", []):
                line = lines.of(qa.get("id"))
                answers, problem, moved = _answers(qa, context, options.label_column is not None)
                if problem:
                    collector.bad(line, problem)
                    continue
                kept = len(collector.examples)
                collector.add({QUESTION: qa.get("question", ""), CONTEXT: context}, answers, line)
                if len(collector.examples) > kept:
                    groups.append(title)
                    repaired += moved
                if collector.full:
                    return _result(collector, groups, repaired)
    return _result(collector, groups, repaired)


def _result(collector: RowCollector, groups: list[str], repaired: int) -> ReadResult:
    result = collector.result()
    return ReadResult(result.examples, result.skipped, result.source, groups=tuple(groups), repaired=repaired)


def _answers(qa: dict, context: str, labelled: bool) -> tuple[tuple | None, str | None, int]:
    """(answers as `(start, text)` pairs, a problem or None, how many starts were moved)."""
    if not labelled:
        return None, None, 0
    if qa.get("is_impossible"):
        return (NO_ANSWER,), None, 0
    answers, moved, absent = [], 0, None
    for answer in qa.get("answers") or []:
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not text or not isinstance(start, int):
            return None, f"question {qa.get('id')!r}: an answer needs a text and an integer answer_start", 0
        if context[start:start + len(text)] != text:
            found = nearest_occurrence(context, text, start)
            if found is None:
                absent = absent or text
            else:
                moved += 1
            start = -1 if found is None else found
        answers.append((start, text))
    if not answers:
        return None, f"question {qa.get('id')!r} has no answers and is not marked is_impossible", 0
    if all(start < 0 for start, _ in answers):
        return None, f"question {qa.get('id')!r}: answer {absent!r} does not occur in its context", 0
    return tuple(answers), None, moved


def nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """The start of the occurrence of `text` in `context` closest to `start`, or None."""
    best, position = None, context.find(text)
    while position != -1:
        if best is None or abs(position - start) < abs(best - start):
            best = position
        position = context.find(text, position + 1)
    return best


class _LineFinder:
    """The line of each question, found by its id in the file text, searching forwards (ids come
    in file order), so errors name a line even in an indented file such as CMRC's."""

    def __init__(self, raw: str):
        self.raw, self.position, self.line = raw, 0, 1

    def of(self, question_id: object) -> int:
        if question_id is None:
            return self.line
        found = self.raw.find(json.dumps(str(question_id), ensure_ascii=False), self.position)
        if found == -1:
            found = self.raw.find(json.dumps(str(question_id)), self.position)
        if found != -1:
            self.line += self.raw.count("\n", self.position, found)
            self.position = found
        return self.line
