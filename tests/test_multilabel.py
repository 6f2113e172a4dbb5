"""Multi-label classification: separated labels, sigmoid outputs, micro/macro-F1, per-label thresholds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.errors import DataError  # noqa: E402

TOPICS = {"goal": "sports", "match": "sports", "vote": "politics", "senate": "politics", "stock": "business"}


def _rows(count: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["text\tlabel"]
    for _ in range(count):
        words = list(rng.choice(list(TOPICS), size=2))
        labels = sorted({TOPICS[w] for w in words})
        lines.append(f"news about {' and '.join(words)}\t{'|'.join(labels)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def multilabel_spec(tmp_path, write_spec):
    (tmp_path / "train.tsv").write_text(_rows(200, 0))
    (tmp_path / "valid.tsv").write_text(_rows(40, 1))
    return write_spec(f"""\
        name: tiny-multilabel
        task: multilabel
        seed: 7
        data: {{train: {tmp_path}/train.tsv, valid: {tmp_path}/valid.tsv, label_separator: '|'}}
        preprocess: {{tokenizer: {{type: word, vocab_size: 500}}, max_length: 16}}
        model: {{embedding: {{dim: 16, position: none}}, pooling: max}}
        train: {{epochs: 15, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """)


def test_multilabel_trains_with_micro_and_macro_f1_and_predicts_label_sets(multilabel_spec, tmp_path):
    run = kbuild.train(kbuild.load_spec(multilabel_spec), run_dir=tmp_path / "run")
    assert run.results["labels"] == ["business", "politics", "sports"]
    valid = run.results["metrics"]["valid"]
    assert {"loss", "micro_f1", "macro_f1"} <= set(valid) and valid["micro_f1"] > 0.8
    # Read off the saved epoch's logs: a fresh evaluation gives the same numbers.
    assert run.results["scored_rows"]["valid"].get("from_validation")
    assert kbuild.evaluate(run.path, split="valid") == pytest.approx(valid, rel=1e-4)
    rows = kbuild.predict(run.path, ["news about goal and vote", "news about stock and stock"])
    assert rows[0]["labels"] == ["politics", "sports"] and rows[1]["labels"] == ["business"]
    assert set(rows[0]["probabilities"]) == {"business", "politics", "sports"}


def test_per_label_thresholds_decide_what_is_predicted(multilabel_spec, tmp_path):
    spec = kbuild.load_spec(multilabel_spec, ["train.max_steps=2", "model.head.threshold={business: 0.0}"])
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    export = kbuild.export(run.path, tmp_path / "export")
    assert all("business" in row["labels"] for row in kbuild.predict(export, ["news about goal", "news"]))


def test_a_label_only_in_valid_names_its_line(multilabel_spec, tmp_path):
    (tmp_path / "valid.tsv").write_text("text\tlabel\nnews about goal\tsports\nnews about rain\tsports|weather\n")
    from kbuild.tasks.bundle import build

    with pytest.raises(DataError, match=r"valid\.tsv:3: label 'weather' does not occur in the train split"):
        build(kbuild.load_spec(multilabel_spec))
