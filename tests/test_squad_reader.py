"""`format: squad`: SQuAD v1.1/v2.0 and CMRC 2018 files read one example per question, answers
as `(start, text)` pairs, wrong starts repaired and counted, held-out splits by whole article."""

from __future__ import annotations

import json

import pytest

from kbuild.data.readers import read_examples
from kbuild.data.splits import read_splits
from kbuild.errors import DataError
from kbuild.spec.data import DataSpec

INPUTS = ("question", "context")
COLUMNS = {"question": "question", "context": "context", "label": "label"}


def _squad(path, articles, version="1.1"):
    path.write_text(json.dumps({"version": version, "data": articles}, indent=1), encoding="utf-8")
    return path


def _article(title, context, qas):
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def _qa(qid, question, answers, impossible=None):
    qa = {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for s, t in answers]}
    if impossible is not None:
        qa["is_impossible"] = impossible
    return qa


def _read(path, **data):
    spec = DataSpec(train=str(path), format="squad", columns=COLUMNS, **data)
    return read_examples(str(path), spec, "data.train", inputs=INPUTS)


def test_one_example_per_question_with_every_answer_and_v2_unanswerable(tmp_path):
    context = "Paris is the capital of France. It lies on the Seine."
    path = _squad(tmp_path / "v2.json", [_article("France", context, [
        _qa("q1", "What is the capital of France?", [(0, "Paris"), (0, "Paris")], impossible=False),
        _qa("q2", "Which river?", [(47, "Seine")]),
        _qa("q3", "Who founded Paris?", [], impossible=True),
    ])], version="v2.0")
    result = _read(path)
    assert [e["question"] for e in result.examples] == ["What is the capital of France?", "Which river?", "Who founded Paris?"]
    assert result.examples[0]["context"] == context
    assert result.examples[0].label == ((0, "Paris"), (0, "Paris"))
    assert result.examples[1].label == ((47, "Seine"),)
    assert result.examples[2].label == ((-1, ""),)
    assert result.groups == ("France",) * 3 and result.repaired == 0


def test_a_start_that_misses_its_text_moves_to_the_nearest_occurrence_and_is_counted(tmp_path):
    context = "one cat, two cat, three cat"
    path = _squad(tmp_path / "d.json", [_article("a", context, [_qa("q", "?", [(15, "cat")])])])
    result = _read(path)
    start, text = result.examples[0].label[0]
    assert (start, text) == (13, "cat") and context[start:start + 3] == "cat" and result.repaired == 1


def test_an_answer_absent_from_its_context_fails_naming_the_line_or_is_skipped(tmp_path):
    path = _squad(tmp_path / "d.json", [_article("a", "some context", [
        _qa("good", "?", [(0, "some")]), _qa("bad", "?", [(0, "missing")])])])
    with pytest.raises(DataError, match=r"d\.json:\d+: question 'bad': answer 'missing' does not occur") as error:
        _read(path)
    line = int(str(error.value).split("d.json:")[1].split(":")[0])
    assert '"bad"' in path.read_text().splitlines()[line - 1]
    result = _read(path, on_error="skip")
    assert len(result.examples) == 1 and result.skipped == 1


def test_an_answer_absent_from_its_context_stays_a_reference_when_another_answer_has_a_span(tmp_path):
    path = _squad(tmp_path / "d.json", [_article("a", "some context", [_qa("q", "?", [(0, "some"), (-1, "elsewhere")])])])
    assert _read(path).examples[0].label == ((0, "some"), (-1, "elsewhere"))


def test_cmrc_trial_and_dev_read_with_their_wrong_starts_repaired():
    from kbuild.paths import data_root

    folder = data_root() / "cmrc2018"
    if not folder.is_dir():
        pytest.skip("CMRC 2018 not in the shared data")
    trial, dev = (_read(folder / f"cmrc2018_{name}.json", on_error="skip") for name in ("trial", "dev"))
    # Two trial questions are empty strings (bad rows); every dev question keeps a span.
    assert (len(trial.examples), trial.skipped, trial.repaired) == (1000, 2, 5)
    assert (len(dev.examples), dev.skipped) == (3219, 0)
    for example in trial.examples + dev.examples:
        for start, text in example.label:
            assert start == -1 or example["context"][start:start + len(text)] == text


def test_article_holdout_keeps_every_question_of_an_article_in_one_split(tmp_path):
    articles = [_article(f"t{i}", f"context {i} words", [_qa(f"q{i}{j}", f"q {j}?", [(0, "context")]) for j in range(3)])
                for i in range(10)]
    path = _squad(tmp_path / "d.json", articles)
    data = DataSpec(train=str(path), format="squad", columns=COLUMNS, test_fraction=0.2, valid_fraction=0.25,
                    holdout="article")
    splits = read_splits(data, seed=1, inputs=INPUTS)
    titles = {name: set(split.groups) for name, split in splits.items()}
    assert [len(titles[name]) for name in ("train", "valid", "test")] == [6, 2, 2]
    assert not (titles["train"] & titles["valid"]) and not (titles["train"] & titles["test"])
    assert all(len(split.examples) == 3 * len(titles[name]) for name, split in splits.items())
    # The test split is the same when only it is asked for (kbuild evaluate --split test).
    assert read_splits(data, seed=1, splits=("test",), inputs=INPUTS)["test"].examples == splits["test"].examples


def test_limit_caps_each_split_after_whole_articles_are_held_out(tmp_path):
    articles = [_article(f"t{i}", f"context {i}", [_qa(f"q{i}{j}", "?", [(0, "context")]) for j in range(5)]) for i in range(10)]
    path = _squad(tmp_path / "d.json", articles)
    data = DataSpec(train=str(path), format="squad", columns=COLUMNS, valid_fraction=0.2, holdout="article", limit=4)
    splits = read_splits(data, seed=1, inputs=INPUTS)
    assert [len(splits[name].examples) for name in ("train", "valid")] == [4, 4]
    assert not set(splits["train"].groups) & set(splits["valid"].groups)


def test_article_holdout_on_a_format_without_articles_names_the_option(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "a"}) + "\n" for i in range(10)))
    data = DataSpec(train=str(path), valid_fraction=0.2, holdout="article")
    with pytest.raises(DataError, match="holdout: article needs examples grouped by article"):
        read_splits(data, seed=1)
