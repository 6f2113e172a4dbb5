"""Readers (tsv, csv, jsonl, text), the data root, and the built-in generated datasets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kbuild.data.builtin import load_builtin, sentiment
from kbuild.data.example import Example
from kbuild.data.readers import READERS, infer_format, read_examples
from kbuild.errors import DataError
from kbuild.paths import data_root, expand_data_path
from kbuild.spec.data import DataSpec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def spec(path: str, **fields) -> DataSpec:
    return DataSpec(train=path, **fields)


def read(path: str, key: str = "data.train", **fields):
    return read_examples(path, spec(path, **fields), key)


# --- tsv -----------------------------------------------------------------------------------------


def test_tsv_reader_reads_text_label_and_starting_line(tmp_path):
    path = write(tmp_path, "a.tsv", 'label\ttext\n1\ta "quoted" fine film\n0\tdull\n')
    result = read(path)
    assert result.examples == [Example('a "quoted" fine film', "1", 2), Example("dull", "0", 3)]
    assert result.skipped == 0 and result.source == path


def test_tsv_reader_skips_blank_lines_without_counting_them(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\r\n\r\n1\tgood\r\n   \n0\tbad\r\n\n")
    result = read(path)
    assert [(e.text, e.line) for e in result.examples] == [("good", 3), ("bad", 5)]
    assert result.skipped == 0


def test_tsv_reader_reports_line_of_row_with_stray_tab(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\n1\tgood\n0\tbad\tworse\n")
    with pytest.raises(DataError) as error:
        read(path)
    message = str(error.value)
    assert message.startswith(f"{path}:3: ")
    assert "3 fields but the header has 2" in message and "stray tab" in message
    assert (error.value.file, error.value.line) == (path, 3)


def test_tsv_reader_reads_columns_by_name_in_any_order(tmp_path):
    path = write(tmp_path, "a.tsv", "id\tsentence\tlabel\n7\tnice\tpos\n")
    result = read(path, columns={"text": "sentence", "label": "label"})
    assert result.examples == [Example("nice", "pos", 2)]


# --- csv -----------------------------------------------------------------------------------------


def test_csv_reader_handles_quoted_commas_quotes_and_line_breaks(tmp_path):
    text = 'label,review\n1,"good, really ""good""\nsecond line"\n0,plain\n'
    result = read(write(tmp_path, "a.csv", text), columns={"text": "review", "label": "label"})
    assert result.examples == [
        Example('good, really "good"\nsecond line', "1", 2),
        Example("plain", "0", 4),
    ]


def test_csv_reader_reports_line_of_row_missing_column(tmp_path):
    text = 'label,text\n1,"spans\ntwo lines"\n0\n1,fine\n'
    with pytest.raises(DataError) as error:
        read(write(tmp_path, "a.csv", text))
    assert error.value.line == 4
    assert "row has 1 field but the header has 2; column 'text' is missing" in str(error.value)


def test_csv_reader_reports_unclosed_quote_at_its_row(tmp_path):
    text = 'label,text\n1,ok\n0,"never closed\n1,more\n'
    with pytest.raises(DataError) as error:
        read(write(tmp_path, "a.csv", text))
    assert error.value.line == 3


# --- row errors and on_error -----------------------------------------------------------------------


def test_empty_text_fails_naming_file_line_column_and_how_to_skip(tmp_path):
    path = write(tmp_path, "a.csv", 'label,review\n1,good\n0,""\n')
    with pytest.raises(DataError) as error:
        read(path, columns={"text": "review", "label": "label"})
    message = str(error.value)
    assert message.startswith(f"{path}:3: empty text in column 'review'")
    assert "data.on_error: skip" in message


def test_empty_label_fails_at_its_line(tmp_path):
    with pytest.raises(DataError, match="empty label in column 'label'") as error:
        read(write(tmp_path, "a.tsv", "label\ttext\n1\tgood\n \tbad\n"))
    assert error.value.line == 3


def test_on_error_skip_drops_bad_rows_and_counts_them(tmp_path):
    text = "label\ttext\n1\tgood\n0\t \n1\n0\tbad\textra\n0\tbad\n"
    result = read(write(tmp_path, "a.tsv", text), on_error="skip")
    assert [e.text for e in result.examples] == ["good", "bad"]
    assert result.skipped == 3


def test_all_rows_bad_under_skip_is_an_error_quoting_the_first_problem(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\n1\t\n0\t\n")
    with pytest.raises(DataError, match=r"no usable rows: all 2 rows .* line 2: empty text"):
        read(path, on_error="skip")


def test_limit_caps_examples_kept(tmp_path):
    rows = "".join(f"{i % 2}\ttext {i}\n" for i in range(50))
    result = read(write(tmp_path, "a.tsv", "label\ttext\n" + rows), limit=7)
    assert [e.text for e in result.examples] == [f"text {i}" for i in range(7)]


def test_unlabelled_read_ignores_the_label_column(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\n\tgood\n")
    result = read_examples(path, spec(path), "data.test", labelled=False)
    assert result.examples == [Example("good", None, 2)]


# --- header and columns ----------------------------------------------------------------------------


def test_header_without_requested_column_lists_columns_and_suggests_closest(tmp_path):
    path = write(tmp_path, "a.tsv", "label\tsentence\n1\tgood\n")
    with pytest.raises(DataError) as error:
        read(path, columns={"text": "sentense", "label": "label"})
    message = str(error.value)
    assert "column 'sentense' not found in the header" in message
    assert 'did you mean "sentence"' in message and "the header has: label, sentence" in message
    assert error.value.line == 1


def test_headerless_file_reads_columns_by_index(tmp_path):
    path = write(tmp_path, "a.tsv", "good\tpos\nbad\tneg\n")
    result = read(path, header=False, columns={"text": 0, "label": 1})
    assert result.examples == [Example("good", "pos", 1), Example("bad", "neg", 2)]


def test_headerless_row_missing_indexed_column_fails_at_its_line(tmp_path):
    path = write(tmp_path, "a.tsv", "good\tpos\nbad\n")
    with pytest.raises(DataError, match="column #1 is missing") as error:
        read(path, header=False, columns={"text": 0, "label": 1})
    assert error.value.line == 2


def test_column_name_without_header_is_rejected(tmp_path):
    path = write(tmp_path, "a.tsv", "good\tpos\n")
    with pytest.raises(DataError, match="data.columns.text: 'sentence' is a column name"):
        read(path, header=False, columns={"text": "sentence", "label": 1})


def test_unknown_column_role_suggests_closest(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\n1\tgood\n")
    with pytest.raises(DataError, match=r"unknown role 'lable' \(did you mean \"label\"\?\)"):
        read(path, columns={"text": "text", "lable": "label"})


# --- files -----------------------------------------------------------------------------------------


def test_missing_file_names_the_spec_key_and_path(tmp_path):
    path = str(tmp_path / "nope.tsv")
    with pytest.raises(DataError) as error:
        read(path, key="data.valid")
    assert str(error.value) == f"data.valid: file not found: {path}"


@pytest.mark.parametrize("text", ["", "\n\n", "label\ttext\n"])
def test_file_without_rows_is_an_error(tmp_path, text):
    path = write(tmp_path, "a.tsv", text)
    with pytest.raises(DataError, match="data.train: no rows to read") as error:
        read(path)
    assert error.value.file == path


def test_invalid_utf8_is_reported_at_its_line(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"label\ttext\n1\tgood\n0\tbad \xff byte\n")
    with pytest.raises(DataError, match="not valid UTF-8") as error:
        read(str(path))
    assert error.value.line == 3


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("label,text\n1,好\n".encode("utf-8-sig"))
    assert read(str(path)).examples == [Example("好", "1", 2)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.tsv", "tsv"),
        ("a.CSV", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.json", "jsonl"),
        ("a.txt", "text"),
    ],
)
def test_format_is_inferred_from_the_extension(name, expected):
    assert infer_format(Path(name)) == expected


def test_unknown_extension_asks_for_data_format(tmp_path):
    path = write(tmp_path, "a.data", "label\ttext\n1\tgood\n")
    with pytest.raises(DataError, match="set data.format to one of: conll, tsv, csv, jsonl, parallel, squad, text"):
        read(path)
    assert read(path, format="tsv").examples == [Example("good", "1", 2)]


def test_reader_registry_names_every_format():
    assert set(READERS.names()) == {"tsv", "csv", "jsonl", "text", "conll", "parallel", "squad"}


# --- jsonl and text --------------------------------------------------------------------------------


def test_jsonl_reader_reads_keys_and_numeric_labels(tmp_path):
    text = '{"text": "good", "label": 1}\n\n{"text": "bad", "label": "neg", "id": 3}\n'
    result = read(write(tmp_path, "a.jsonl", text))
    assert result.examples == [Example("good", "1", 1), Example("bad", "neg", 3)]


def test_jsonl_reader_reports_invalid_json_at_its_line(tmp_path):
    text = '{"text": "good", "label": 1}\n{"text": "bad", \n'
    with pytest.raises(DataError, match="invalid JSON") as error:
        read(write(tmp_path, "a.jsonl", text))
    assert error.value.line == 2


def test_jsonl_reader_reports_missing_key_with_suggestion(tmp_path):
    text = '{"txt": "good", "label": 1}\n'
    with pytest.raises(DataError, match="missing key 'text' \\(did you mean \"txt\"\\?\\)"):
        read(write(tmp_path, "a.jsonl", text))


def test_jsonl_reader_rejects_non_string_text_and_non_objects(tmp_path):
    text = '{"text": 5, "label": 1}\n[1, 2]\n{"text": "ok", "label": 0}\n'
    result = read(write(tmp_path, "a.jsonl", text), on_error="skip")
    assert result.examples == [Example("ok", "0", 3)] and result.skipped == 2


def test_text_reader_gives_one_unlabelled_example_per_line(tmp_path):
    path = write(tmp_path, "in.txt", "first line\n\nsecond, with comma\t and tab\n")
    result = read(path, limit=5)
    assert result.examples == [
        Example("first line", None, 1),
        Example("second, with comma\t and tab", None, 3),
    ]


# --- data root -------------------------------------------------------------------------------------


def test_data_root_defaults_to_shared_data_beside_the_repo(monkeypatch):
    monkeypatch.delenv("KBUILD_DATA", raising=False)
    assert data_root() == SHARED_DATA


def test_kbuild_data_variable_overrides_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("KBUILD_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert expand_data_path("${KBUILD_DATA}/sst2/train.tsv") == tmp_path / "sst2" / "train.tsv"


def test_readers_and_builtins_import_no_tensorflow():
    code = (
        "import sys, kbuild.data, kbuild.paths, kbuild.data.readers, kbuild.data.builtin, "
        "kbuild.data.splits, kbuild.data.labels; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- built-in datasets -----------------------------------------------------------------------------


def test_builtin_sentiment_is_deterministic_with_4000_500_500_examples():
    splits = load_builtin("sentiment")
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 4000,
        "valid": 500,
        "test": 500,
    }
    regenerated = sentiment.__wrapped__()  # bypass the cache: generate again from scratch
    assert {name: list(examples) for name, examples in regenerated.items()} == {
        name: split.examples for name, split in splits.items()
    }


def test_builtin_sentiment_labels_are_balanced_and_splits_distinct():
    splits = load_builtin("sentiment")
    counts = Counter(e.label for e in splits["train"].examples)
    assert set(counts) == {"negative", "positive"}
    assert 0.45 < counts["positive"] / 4000 < 0.55
    texts = [e.text for split in splits.values() for e in split.examples]
    assert len(set(texts)) == len(texts)


def test_builtin_sentiment_reads_like_sst2_with_negation_and_contrast():
    texts = [e.text for e in load_builtin("sentiment")["train"].examples]
    assert all(t == t.lower() and t.endswith((" .", " !")) for t in texts)
    assert sum(" not " in t or " never " in t for t in texts) > 200
    assert sum(" , but " in t for t in texts) > 400


def test_builtin_limit_caps_every_split():
    splits = load_builtin("sentiment", limit=10)
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 10,
        "valid": 10,
        "test": 10,
    }
    assert splits["valid"].source == "<builtin:sentiment>/valid"


def test_unknown_builtin_suggests_closest():
    with pytest.raises(DataError, match='data.builtin: unknown builtin dataset .*"sentiment"'):
        load_builtin("sentimet")


# --- real data -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared datasets not present")
def test_real_sst2_and_chnsenticorp_read_fast_and_completely():
    start = time.perf_counter()
    sst2 = read(
        str(SHARED_DATA / "sst2" / "train.tsv"), columns={"text": "sentence", "label": "label"}
    )
    elapsed = time.perf_counter() - start
    assert len(sst2) == 67349 and elapsed < 2.0
    columns = {"text": "review", "label": "label"}
    test = SHARED_DATA / "chnsenticorp" / "test.csv"
    with pytest.raises(DataError, match="empty text in column 'review'"):
        read(str(test), columns=columns)
    assert read(str(test), columns=columns, on_error="skip").skipped == 1
    assert len(read(str(SHARED_DATA / "chnsenticorp" / "train.csv"), columns=columns)) == 6213
