"""`kbuild predict` as a batch job: files or stdin, streamed in batches, progress on stderr only."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from kbuild.progress import Progress

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402

WORDS = ["good", "bad", "dull", "moving", "film", "plot", "great", "awful", "not", "very"]


def _texts(n):
    return [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 5)) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def export_dir(tiny_run, tmp_path_factory):
    return kbuild.export(tiny_run, tmp_path_factory.mktemp("bp") / "tiny").parent


def test_a_file_is_predicted_in_batches_in_order_skipping_blank_lines(export_dir, tmp_path):
    texts = _texts(150)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts[:70]) + "\n\n   \n" + "\n".join(texts[70:]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(export_dir), "--input", str(source), "--output", str(out),
                                      "--batch-size", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts
    whole = kbuild.predict(export_dir, texts, batch_size=150)
    assert [r["label"] for r in rows] == [r["label"] for r in whole]
    for got, want in zip(rows, whole, strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_progress_goes_to_stderr_and_never_into_the_json_lines(tiny_run):
    texts = _texts(40)
    result = CliRunner().invoke(cli, ["predict", str(tiny_run), "--input", "-", "--batch-size", "8", "--progress"],
                                input="\n".join(texts) + "\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == texts
    assert "predicted 40 rows" in result.stderr


def test_small_piped_input_shows_no_progress(export_dir):
    result = CliRunner().invoke(cli, ["predict", str(export_dir), "--input", "-"], input="a great film\n")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and json.loads(result.stdout)["text"] == "a great film"


def test_predictions_stream_without_reading_the_whole_input_first(export_dir):
    consumed = []

    def texts():
        for i, text in enumerate(_texts(100)):
            consumed.append(i)
            yield text

    from kbuild.prediction import load_predictor

    rows = load_predictor(export_dir).predict(texts(), batch_size=10)
    next(rows)
    assert len(consumed) == 10


def test_progress_off_a_terminal_prints_whole_lines_with_total_and_rate():
    stream = io.StringIO()
    progress = Progress(total=200, stream=stream, interval=0.0)
    progress.update(50)
    progress.update(150)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("predicted 50/200 rows (25%)")
    assert lines[-1].startswith("predicted 200/200 rows (100%)") and "rows/s" in lines[-1]
    assert "\r" not in stream.getvalue()
