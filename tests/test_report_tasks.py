"""`kbuild report` for the other tasks, each on a tiny real run: regression, multilabel, language
model, seq2seq and VAE reports hold their sections with results.json's numbers and the model's
own outputs (slow: five trainings)."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import TINY_SPEC
from tests.report_html import parse_report

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.report import ReportOptions, build_report  # noqa: E402


def _regression(folder):
    from tests.test_regression import _rows

    (folder / "train.tsv").write_text(_rows(160, 0))
    (folder / "valid.tsv").write_text(_rows(40, 1))
    return TINY_SPEC.replace("task: classification", "task: regression").replace(
        "  builtin: sentiment\n  limit: 256\n", f"  train: {folder}/train.tsv\n  valid: {folder}/valid.tsv\n"
    ).replace("max_steps: 4", "max_steps: 20").replace("epochs: 1", "epochs: 4")


def _multilabel(folder):
    from tests.test_multilabel import _rows

    (folder / "train.tsv").write_text(_rows(200, 0))
    (folder / "valid.tsv").write_text(_rows(40, 1))
    return textwrap.dedent(f"""\
        name: tiny-multilabel
        task: multilabel
        seed: 7
        data: {{train: {folder}/train.tsv, valid: {folder}/valid.tsv, label_separator: '|'}}
        preprocess: {{tokenizer: {{type: word, vocab_size: 500}}, max_length: 16}}
        model: {{embedding: {{dim: 16, position: none}}, pooling: max}}
        train: {{epochs: 3, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """)


def _language_model(folder):
    from tests.lm_fixtures import LM_SPEC, LSTM_BLOCK, write_text

    return textwrap.dedent(LM_SPEC.format(name="tiny-lm", text=write_text(folder), block=LSTM_BLOCK,
                                          position="none", steps=40)).replace("epochs: 50", "epochs: 2")


def _seq2seq(folder):
    from tests.test_seq2seq import _pairs, _write_parallel

    train = _write_parallel(folder, "train", _pairs(200, 1))
    valid = _write_parallel(folder, "valid", _pairs(20, 2))
    return textwrap.dedent(f"""\
        name: tiny-seq2seq
        task: seq2seq
        seed: 5
        data: {{format: parallel, train: {train}, valid: {valid}, target_suffix: .de}}
        preprocess: {{tokenizer: {{type: word, lowercase: false}}, max_length: 10}}
        model:
          embedding: {{dim: 16, position: none}}
          blocks: [{{type: bilstm, units: 16}}]
          decoder: {{type: lstm, units: 16, attention: bahdanau, dropout: 0.0}}
        eval: {{metrics: [bleu, rouge]}}
        train: {{epochs: 2, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """)


def _vae(folder):
    from tests.test_vae import SPEC, _sentences

    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text("\n".join(_sentences(200, 1)) + "\n")
    valid.write_text("\n".join(_sentences(20, 2)) + "\n")
    return SPEC.format(train=train, valid=valid, anneal=20, free_bits=1.0, epochs=2)


# task -> (spec writer, sections its report must have, (section, metric) pairs that must match results.json)
TASKS = {
    "regression": (_regression, {"regression", "mistakes"}, []),
    "multilabel": (_multilabel, {"per-class", "confusion", "calibration", "mistakes"}, []),
    "language_model": (_language_model, {"perplexity", "samples"}, [("perplexity", "perplexity")]),
    "seq2seq": (_seq2seq, {"bleu", "samples"}, [("bleu", "bleu"), ("bleu", "rougeL")]),
    "vae": (_vae, {"elbo", "samples"}, [("elbo", "elbo"), ("elbo", "kl")]),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_report_of_each_task_has_its_sections_with_the_numbers_of_results_json(task, tmp_path):
    write, expected, checked = TASKS[task]
    spec = tmp_path / "spec.yaml"
    spec.write_text(write(tmp_path))
    run = kbuild.train(kbuild.load_spec(spec), run_dir=tmp_path / "run").path
    results = json.loads((run / "results.json").read_text())
    page = parse_report(build_report([run], options=ReportOptions(samples=3)).path)
    assert {"summary", "curves", "metrics"} | expected <= set(page.sections)
    for section, metric in checked:
        table = next(t for t in page.tables if t.section == section)
        for split, values in results["metrics"].items():
            if metric in values:
                assert float(table.cell(split, metric)) == values[metric], (split, metric)
    if "samples" in expected:
        samples = [t for t in page.tables if t.section == "samples"]
        assert samples and all(len(t.rows) == 3 for t in samples)
    if task == "regression":
        stats = next(t for t in page.tables if t.section == "regression")
        assert float(stats.rows[0][stats.columns.index("Pearson r")]) == pytest.approx(results["metrics"]["valid"]["pearson"], abs=1e-3)
    if task == "multilabel":
        per_label = next(t for t in page.tables if t.section == "per-class")
        assert [row[0] for row in per_label.rows] == results["labels"]
