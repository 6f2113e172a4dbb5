"""Fuzzing `kbuild predict`'s input: any bytes, in any format, for a model of one or two inputs,
with rows over the byte bound, are read row by row into texts or `BadRow`s naming a line, or
refused with a `DataError` -- never another exception, and always to the end of the stream."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from kbuild.errors import DataError
from kbuild.prediction.rows import FORMATS, BadRow, read_rows
from tests.fuzz.outcomes import record

LINE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "{", "[]", "null", '{"text": 1}', '{"text": "a"}', '{"text": "a", "text_pair": "b"}',
                     "text\ttext_pair", "text,text_pair", "a\tb", "a,b,c", '"a,b",c', "x" * 80]),
)


@st.composite
def prediction_input(draw):
    lines = draw(st.lists(LINE, max_size=10))
    body = draw(st.sampled_from(["\n", "\r\n"])).join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
    inputs = draw(st.sampled_from([("text",), ("text", "text_pair")]))
    return body, inputs, draw(st.sampled_from(FORMATS)), draw(st.sampled_from([16, 64, 1 << 20]))


@given(prediction_input())
def test_prediction_rows(case):
    body, inputs, fmt, max_bytes = case
    lines = body.count(b"\n") + 1
    try:
        rows = list(read_rows(io.BytesIO(body), inputs, fmt, "in.jsonl" if fmt == "auto" else "<stdin>", max_bytes))
    except DataError as error:
        assert str(error)
        record("predict_rows", "clean_error")
        return
    for row in rows:
        if isinstance(row, BadRow):
            assert 1 <= row.line <= lines and row.message
            continue
        number, texts = row
        assert 1 <= number <= lines and set(texts) == set(inputs)
        assert all(isinstance(text, str) for text in texts.values())
        assert len(json.dumps(texts).encode()) <= 6 * max_bytes + 64  # no row past the bound
    record("predict_rows", "accepted_valid")
