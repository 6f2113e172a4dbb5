"""Issue 18: undecodable bytes are reported at their line (data files and `kbuild predict` input),
and unexpected CLI failures name where they happened."""

from __future__ import annotations

import io

import pytest

from kbuild.data.readers.base import read_text
from kbuild.errors import DataError
from kbuild.failures import describe_failure
from kbuild.prediction import read_lines

ROWS = "".join(f"row {i}\tpositive\n" for i in range(2, 11))


def test_latin1_row_is_reported_at_its_own_line(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(("text\tlabel\n" + ROWS + "caf\u00e9 cr\u00e8me\tnegative\n").encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as caught:
        read_text(path)
    assert caught.value.line == 11
    assert "column 4" in str(caught.value)


def test_line_is_right_after_a_byte_order_mark(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + ("text\tlabel\n" + ROWS).encode() + b"\xff\tx\n")
    with pytest.raises(DataError) as caught:
        read_text(path)
    assert caught.value.line == 11 and "column 1" in str(caught.value)
    path.write_bytes(b"\xef\xbb\xbfok\n")
    assert read_text(path) == "ok\n"


def test_predict_input_reports_the_line_not_a_buffer_offset():
    raw = b"".join(f"line {i}\n".encode() for i in range(1, 20000)) + "caf\u00e9\n".encode("latin-1")
    lines = read_lines(io.BytesIO(b"\xef\xbb\xbf" + raw), "in.txt")
    assert next(lines) == "line 1\n"
    with pytest.raises(DataError) as caught:
        list(lines)
    assert (caught.value.file, caught.value.line) == ("in.txt", 20000)


def _fail_inside_kbuild():
    from kbuild.registry import Registry

    Registry("thing").get("missing")


def test_unexpected_failures_name_their_location():
    try:
        int("x")
    except ValueError as exc:
        text = describe_failure(exc)
    assert text.startswith("ValueError: invalid literal") and "test_robust_data.py:" in text
    try:
        _fail_inside_kbuild()
    except Exception as exc:  # noqa: BLE001 - whatever the registry raises
        text = describe_failure(exc)
    assert "[at kbuild/registry.py:" in text


def test_out_of_memory_names_the_sizes_to_reduce():
    assert "train.batch_size" in describe_failure(MemoryError())
