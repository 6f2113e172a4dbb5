"""`kbuild report` on an extractive QA run: exact match / F1 overall, by question word and by
answer length, each breakdown adding up to the split; the worst answers with the reference and
the prediction marked in an escaped context; the answers decoded once and cached. The pure parts
(question words, marking, rendering) run on made-up answers; the rest on a tiny trained run."""

from __future__ import annotations

import json

import pytest

from kbuild.report.content import Marked
from kbuild.report.passages import marked_context
from kbuild.report.question_words import question_kind
from kbuild.report.sections.qa import (
    QAPredictions,
    answer_length_section,
    mistakes_section,
    question_word_section,
)
from tests.report_html import ReportParser

QA_SECTIONS = {"qa-scores", "question-words", "answer-length", "qa-mistakes"}


@pytest.mark.parametrize(("question", "kind"), [
    ("What is the capital of France?", "what"),
    ("In which year did what happen?", "which"),
    ("Whose horse won?", "who"),
    ("How many people live there?", "how"),
    ("The city she was born in is?", "other"),
    ("北京是什么时候建成的？", "when"),
    ("他为什么离开？", "why"),
    ("这本书是谁写的？", "who"),
    ("长城在哪里？", "where"),
    ("这是什么？", "what"),
    ("额亦都一生有几位妻子？", "how"),
    ("他几乎什么都不知道？", "what"),
])
def test_question_kind_is_the_first_interrogative_in_english_and_chinese(question, kind):
    assert question_kind(question) == kind


def test_overlapping_answers_are_cut_into_pieces_that_name_both_marks():
    pieces = marked_context("Alice lives in Paris now.", [(15, 20, "gold"), (6, 20, "predicted")])
    assert pieces == [Marked("Alice "), Marked("lives in ", ("predicted",)), Marked("Paris", ("gold", "predicted")),
                      Marked(" now.")]


def test_a_long_context_is_shown_as_windows_around_each_mark_with_gaps_between():
    context = " ".join(["early"] * 200) + " Carol lives in Oslo. " + " ".join(["late"] * 200) + " Bob."
    oslo, bob = context.index("Oslo"), context.index("Bob")
    pieces = marked_context(context, [(oslo, oslo + 4, "gold"), (bob, bob + 3, "predicted")])
    marked = [(p.text, p.marks) for p in pieces if p.marks and p.marks != ("gap",)]
    assert marked == [("Oslo", ("gold",)), ("Bob", ("predicted",))]
    assert pieces[0].marks == ("gap",) and sum(p.marks == ("gap",) for p in pieces) == 2
    shown = "".join(p.text for p in pieces if p.marks != ("gap",))
    assert len(shown) < len(context) / 2 and not shown.startswith(" ")


def _answers(rows: list[tuple[str, str, list[tuple[int, str]], str]], metric: str = "squad") -> QAPredictions:
    """Cached-answer payload of (question, context, references, answer) rows, the answer located
    at its first occurrence in the context."""
    contexts = list(dict.fromkeys(context for _, context, _, _ in rows))
    return QAPredictions({"metric": metric, "contexts": contexts, "rows": [
        {"question": q, "context": contexts.index(c), "references": [list(r) for r in refs], "answer": a,
         "score": 1.5, "start": c.find(a) if a else 0, "end": (c.find(a) + len(a)) if a else 0}
        for q, c, refs, a in rows]})


def _render(sections) -> ReportParser:
    from kbuild.report.render import Page, render_page

    parser = ReportParser()
    parser.feed(render_page(Page("qa", "", sections)))
    return parser


def test_breakdowns_count_every_question_once_and_their_all_row_is_the_overall_score():
    context = "Bob lives in the city of Lima, far from Rome."
    predictions = _answers([
        ("Where does Bob live?", context, [(25, "Lima")], "Lima"),
        ("Who lives in Lima?", context, [(0, "Bob")], "Rome"),
        ("Which city is far?", context, [(40, "Rome")], "the city of Lima"),
        ("Name the place.", context, [(13, "the city of Lima")], "city of Lima"),
    ])
    from kbuild.tasks.qa_scoring import summarize

    overall = summarize(predictions.scores)
    page = _render([question_word_section("valid", predictions), answer_length_section("valid", predictions)])
    for table in page.tables:
        counts = {row[0]: int(row[1]) for row in table.rows}
        assert counts.pop("all") == sum(counts.values()) == 4
        all_row = next(row for row in table.rows if row[0] == "all")
        assert float(all_row[3]) == pytest.approx(overall["exact_match"]) and float(all_row[4]) == pytest.approx(overall["f1"])
    words = {row[0]: float(row[4]) for row in page.tables[0].rows}
    assert words == {"where": 100.0, "who": 0.0, "which": 0.0, "other": 100.0, "all": pytest.approx(50.0)}
    lengths = {row[0]: int(row[1]) for row in page.tables[1].rows}
    assert lengths == {"1": 3, "2–3": 1, "all": 4}  # "the city of Lima" is "city of lima" once normalised


def test_a_mistake_marks_reference_and_prediction_in_an_escaped_context():
    context = "Tags like <b>& are text here: Bob & Carol live in <Lima>."
    predictions = _answers([("Who lives in <Lima>?", context, [(context.index("Bob"), "Bob & Carol")], "<Lima>")])
    from kbuild.report.render import Page, render_page

    html = render_page(Page("qa", "", [mistakes_section("valid", predictions, count=5)]))
    assert "<b>" not in html and "<Lima>" not in html
    assert "&lt;b&gt;&amp; are" in html and "&lt;Lima&gt;" in html
    page = ReportParser()
    page.feed(html)
    assert "b" not in page.tags
    assert list(zip(page.mark_classes, page.marks, strict=True)) == [("gold", "Bob & Carol"), ("predicted", "<Lima>")]


def test_cmrc_answer_length_counts_chinese_characters_and_whole_english_words():
    context = "故宫位于北京，建于1406年，由朱棣下令修建。"
    predictions = _answers([("故宫在哪里？", context, [(4, "北京")], "北京"),
                            ("故宫建于哪一年？", context, [(9, "1406年")], "1406年"),
                            ("谁下令修建？", context, [(16, "朱棣")], "修建")], metric="cmrc")
    assert [predictions.answer_length(row) for row in predictions.rows] == [2, 2, 2]
    rows = {row[0]: row[1:] for row in question_word_section("valid", predictions).blocks[0].rows}
    assert {kind: count for kind, (count, *_) in rows.items()} == {"where": 1, "when": 1, "who": 1, "all": 3}


def test_unanswerable_questions_get_their_own_length_row_and_a_wrong_answer_marks_only_the_prediction():
    context = "Bob lives in Lima."
    predictions = _answers([("Where does Bob live?", context, [(13, "Lima")], "Lima"),
                            ("Where does Eve live?", context, [(-1, "")], ""),
                            ("Where does Ann live?", context, [(-1, "")], "Bob")])
    lengths = {row[0]: row[1] for row in answer_length_section("valid", predictions).blocks[0].rows}
    assert lengths == {"0 (no answer)": 2, "1": 1, "all": 3}
    page = _render([mistakes_section("valid", predictions, count=5)])
    assert list(zip(page.mark_classes, page.marks, strict=True)) == [("predicted", "Bob")]


def test_no_mistakes_says_so():
    context = "Bob lives in Lima."
    section = mistakes_section("valid", _answers([("Where?", context, [(13, "Lima")], "Lima")]), count=5)
    assert section.blocks[0].kind == "text" and "No mistakes" in section.blocks[0].text


# --- on a tiny trained run ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def qa_report(tmp_path_factory):
    """A tiny QA run (tests/test_extractive_qa.py's) and its report, written twice."""
    pytest.importorskip("tensorflow")
    import kbuild
    from kbuild.report import ReportOptions, build_report
    from tests.test_extractive_qa import SPEC, squad_file

    folder = tmp_path_factory.mktemp("qa-report")
    squad_file(folder / "train.json")
    (folder / "spec.yaml").write_text(SPEC.format(train=folder / "train.json"))
    run = kbuild.train(kbuild.load_spec(folder / "spec.yaml"), run_dir=folder / "run").path
    first = build_report([run], options=ReportOptions(mistakes=4))
    cache = run / "cache" / "report" / "answers-valid.json"
    stamp = cache.stat().st_mtime_ns
    second = build_report([run], options=ReportOptions(mistakes=4))
    return run, first, second, cache, stamp


def test_qa_report_has_its_sections_and_breakdowns_add_up_to_the_split(qa_report):
    from tests.report_html import parse_report

    run, first, _, _, _ = qa_report
    assert QA_SECTIONS <= set(first.sections)
    questions = json.loads((run / "results.json").read_text())["scored_rows"]["valid"]["rows"]  # counts are windows
    page = parse_report(first.path)
    for section in ("question-words", "answer-length"):
        table = next(t for t in page.tables if t.section == section)
        counts = {row[0]: int(row[1]) for row in table.rows}
        assert counts.pop("all") == sum(counts.values()) == questions, section
    scores = next(t for t in page.tables if t.section == "qa-scores")
    assert scores.rows[0][1] == scores.rows[1][1] == str(questions)
    assert [float(x) for x in scores.rows[0][2:]] == pytest.approx([float(x) for x in scores.rows[1][2:]], abs=1e-4)
    assert any("gold" in c for c in page.mark_classes) and any("predicted" in c for c in page.mark_classes)


def test_per_question_scores_average_to_the_tasks_evaluate_on_the_same_split(qa_report):
    from kbuild.report.loader import load_run
    from kbuild.report.predictions import LoadedRun
    from kbuild.tasks import TASKS
    from kbuild.tasks.qa_scoring import summarize

    run, _, _, cache, _ = qa_report
    predictions = QAPredictions(json.loads(cache.read_text())["data"])
    loaded = LoadedRun(load_run(run), "valid", 5000)
    evaluated = TASKS.get("extractive_qa").evaluate(loaded.model, loaded.bundle, "valid", loaded.spec)
    assert len(predictions.rows) == len(loaded.bundle.examples["valid"])
    found = summarize(predictions.scores)
    assert found["exact_match"] == pytest.approx(evaluated["exact_match"])
    assert found["f1"] == pytest.approx(evaluated["f1"])


def test_a_second_report_reads_the_answers_from_the_cache(qa_report):
    _, first, second, cache, stamp = qa_report
    assert cache.stat().st_mtime_ns == stamp
    assert first.path.read_text(encoding="utf-8").count("<mark") == second.path.read_text(encoding="utf-8").count("<mark")
