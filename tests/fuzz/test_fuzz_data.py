"""Fuzzing the data readers: every file is read into examples or refused with a `DataError`
naming the file (and line, for a bad row) -- never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kbuild.data.readers import read_examples
from kbuild.errors import DataError
from kbuild.spec.data import DataSpec
from tests.fuzz.outcomes import record

CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\t", ",", '"', '""', '"a,b"', "\\", "{", "[1]", "null", "O", "B-PER", "I-LOC", "-DOCSTART-", "é", "好"]),
)
FORMATS = {"tsv": ".tsv", "csv": ".csv", "jsonl": ".jsonl", "text": ".txt", "conll": ".conll"}


@st.composite
def data_file(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=12))
    separator = {"tsv": "\t", "csv": ",", "conll": " "}.get(fmt, "\t")
    if fmt == "jsonl":
        import json

        lines = [draw(st.sampled_from([json.dumps({"text": r[0] if r else "", "label": r[-1] if r else None}), "{", "[]",
                                       json.dumps(r), "null", '{"text": 1, "label": [2]}']))
                 for r in rows]
    else:
        lines = [separator.join(r) for r in rows]
    header = draw(st.booleans())
    if header and fmt in ("tsv", "csv"):
        lines.insert(0, separator.join(draw(st.sampled_from([["text", "label"], ["label", "text"], ["text"], ["x", "y"]]))))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    body = newline.join(lines).encode("utf-8", "surrogatepass")
    encoding_damage = draw(st.sampled_from(["none", "none", "bom", "latin1", "bytes"]))
    if encoding_damage == "bom":
        body = b"\xef\xbb\xbf" + body
    elif encoding_damage == "latin1":
        body += "\ncafé\tx\n".encode("latin-1")
    elif encoding_damage == "bytes":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
    columns = draw(st.sampled_from([{"text": "text", "label": "label"}, {"text": 0, "label": 1}, {"text": 1, "label": 0},
                                    {"text": "text"}, {"text": 5, "label": 0}, {"text": 0, "label": 3}]))
    options = {"format": fmt, "columns": columns, "header": header, "on_error": draw(st.sampled_from(["fail", "skip"])),
               "limit": draw(st.sampled_from([None, 1, 3]))}
    return FORMATS[fmt], body, options


@given(data_file(), st.booleans())
def test_data_files(case, labelled):
    suffix, body, options = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(body)
        data = DataSpec.model_validate({"train": str(path), **options})
        try:
            result = read_examples(str(path), data, "data.train", labelled=labelled)
        except DataError as error:
            assert str(error) and (error.file or "data." in str(error)), error
            if error.line is not None:
                assert 1 <= error.line <= body.count(b"\n") + body.count(b"\r") + 1, error
            record("data", "clean_error")
            return
    assert result.examples, "a read with no examples must be a DataError"
    for example in result.examples:
        assert isinstance(example.text, str) and example.text.strip()
        assert isinstance(example.line, int) and example.line >= 1
    record("data", "accepted_valid")
