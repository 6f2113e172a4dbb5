"""Data files that are not rows of text (issue 29, item 4): bounded reading, and a split that is
not a regular file. Each once filled memory, hung or said "file not found"."""

from __future__ import annotations

import os

import pytest

from kbuild.data.readers import read_examples
from kbuild.errors import DataError
from kbuild.spec.data import DataSpec


def test_a_file_without_line_breaks_fails_after_one_rows_worth_of_reading(tmp_path):
    path = tmp_path / "one-line.tsv"
    with open(path, "wb") as out:  # sparse: 2 GB of NUL bytes that take no disk
        out.truncate(2 << 30)
    data = DataSpec(train=str(path), max_bytes=4 << 30, max_row_bytes=1 << 20)
    with pytest.raises(DataError, match=r"one-line.tsv:1: data.train: a row over data.max_row_bytes \(1,048,576 bytes\)"):
        read_examples(str(path), data, "data.train")


def test_a_long_row_is_named_by_its_line(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("text\tlabel\nfine\t1\n" + "x" * 100 + "\t0\nfine\t1\n")
    with pytest.raises(DataError, match=r"rows.tsv:3: data.train: a row over data.max_row_bytes \(50 bytes\)"):
        read_examples(str(path), DataSpec(train=str(path), max_row_bytes=50), "data.train")
    assert len(read_examples(str(path), DataSpec(train=str(path), max_row_bytes=200), "data.train")) == 3


def test_a_file_over_max_bytes_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.tsv"
    path.write_text("text\tlabel\n" + "a fine film\t1\n" * 100)
    with pytest.raises(DataError, match=r"the file is 1,411 bytes, over data.max_bytes \(1,000\)"):
        read_examples(str(path), DataSpec(train=str(path), max_bytes=1000), "data.train")


@pytest.mark.parametrize("make, kind", [(os.mkfifo, "a FIFO"), (None, "a character device")])
def test_a_split_that_is_not_a_regular_file_says_what_it_is(tmp_path, make, kind):
    path = tmp_path / "pipe.tsv"
    if make is None:
        path = "/dev/zero"
    else:
        make(path)
    with pytest.raises(DataError, match=f"data.train: is {kind}.*, not a regular file"):
        read_examples(str(path), DataSpec(train=str(path), format="tsv"), "data.train")


def test_a_new_run_that_fails_on_its_data_leaves_no_run_folder(write_spec, tmp_path):
    import kbuild

    (tmp_path / "train.tsv").write_text("text\tlabel\na fine film\t1\n\t0\n")
    spec = kbuild.load_spec(write_spec(f"name: x\ntask: classification\ndata: {{train: {tmp_path / 'train.tsv'}}}\n"))
    with pytest.raises(DataError, match="empty text"):
        kbuild.train(spec, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the same command runs again once the file is fixed


def test_a_full_disk_names_the_path_and_removes_the_incomplete_run_folder(write_spec, tmp_path, monkeypatch):
    import errno

    import kbuild
    from kbuild.errors import TrainingError
    from kbuild.runs import RunFolder

    def full(self, resolved):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.spec))

    monkeypatch.setattr(RunFolder, "write_spec", full)
    spec = kbuild.load_spec(write_spec("name: x\ntask: classification\ndata: {builtin: sentiment}\n"))
    with pytest.raises(TrainingError, match=r"no space left on the device writing .*run/spec.yaml; the incomplete run folder"):
        kbuild.train(spec, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
