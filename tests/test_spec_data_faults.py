"""Data settings that passed `kbuild validate` but could never run (issue 29, item 6) are now
located spec errors: the file, line and key, and what to write instead."""

from __future__ import annotations

import pytest

from kbuild import load_spec
from kbuild.errors import SpecError

CASES = {
    "empty label column": ("data: {train: t.tsv, columns: {text: text, label: ''}}",
                           "data.columns.label", "received an empty name"),
    "negative index": ("data: {train: t.tsv, columns: {text: -1, label: label}}",
                       "data.columns.text", "expected a 0-based index; received -1"),
    "name without a header": ("data: {train: t.tsv, header: false, columns: {text: sentence, label: 1}}",
                              "data.columns.text", "data.header is false"),
    "name in a CoNLL file": ("data: {train: t.tsv, format: conll, columns: {text: word, label: 3}}",
                             "data.columns.text", "CoNLL files have no header"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_columns_no_reader_can_use_are_located_spec_errors(write_spec, case):
    data, key, message = CASES[case]
    task = "tagging" if "conll" in data else "classification"
    path = write_spec(f"name: x\ntask: {task}\n{data}\n")
    with pytest.raises(SpecError) as error:
        load_spec(path)
    (issue,) = [issue for issue in error.value.issues if issue.key == key]
    assert issue.line == 3 and message in issue.message


def test_a_parallel_corpus_without_its_target_suffix_is_a_spec_error(write_spec):
    path = write_spec("name: x\ntask: seq2seq\ndata: {train: t.en, format: parallel}\n"
                      "model: {decoder: {type: lstm, units: 8}}\n")
    with pytest.raises(SpecError, match=r"data.target_suffix: format parallel needs the extension"):
        load_spec(path)
