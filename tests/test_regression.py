"""Regression: numeric labels, linear head, MSE loss, MAE and Pearson r, served as `value`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY_SPEC

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.errors import DataError  # noqa: E402

WORDS = {"great": 1.0, "good": 0.5, "dull": -0.5, "awful": -1.0}


def _rows(count: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["text\tlabel"]
    for _ in range(count):
        words = list(rng.choice(list(WORDS), size=3))
        lines.append(f"a {' '.join(words)} film\t{sum(WORDS[w] for w in words):.2f}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def regression_spec(tmp_path, write_spec):
    (tmp_path / "train.tsv").write_text(_rows(160, 0))
    (tmp_path / "valid.tsv").write_text(_rows(40, 1))
    spec = TINY_SPEC.replace("task: classification", "task: regression").replace(
        "  builtin: sentiment\n  limit: 256\n", f"  train: {tmp_path}/train.tsv\n  valid: {tmp_path}/valid.tsv\n"
    ).replace("max_steps: 4", "max_steps: 60").replace("epochs: 1", "epochs: 12")
    return write_spec(spec)


def test_pearson_metric_matches_numpy():
    from kbuild.layers import PearsonCorrelation

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=50), rng.normal(size=50)
    metric = PearsonCorrelation()
    metric.update_state(y[:20], x[:20])
    metric.update_state(y[20:], x[20:])
    assert float(metric.result()) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-5)


def test_regression_trains_reports_pearson_and_serves_values(regression_spec, tmp_path):
    run = kbuild.train(kbuild.load_spec(regression_spec), run_dir=tmp_path / "run")
    valid = run.results["metrics"]["valid"]
    assert {"loss", "mae", "pearson", "spearman"} <= set(valid) and valid["pearson"] > 0.5
    # spearman's prediction pass reads rows shortest first, batches cut to their bucket: each
    # row's value is the padded row's, in row order.
    from kbuild.data.pipeline import encode_all, features_dataset
    from kbuild.runs import load_trained_run
    from kbuild.tasks.bundle import load_bundle
    from kbuild.tasks.sorted_predict import predict_rows

    loaded = load_trained_run(run.path)
    bundle = load_bundle(loaded.spec, run.path / "assets", splits=())
    words = list(WORDS)
    texts = [" ".join(["a", *(words[(i + j) % 4] for j in range(i % 9)), "film"]) for i in range(30)]
    features = encode_all(bundle.tokenizer, texts)
    assert len(set((np.asarray(features) != 0).sum(axis=1))) == 9
    padded = loaded.model.predict(features_dataset(features, 32), verbose=0)
    np.testing.assert_allclose(predict_rows(loaded.model, features, 7, trim=True), padded, atol=1e-5)
    rows = kbuild.predict(kbuild.export(run.path, tmp_path / "export"), ["a great great good film", "a awful dull dull film"])
    assert rows[0]["value"] > rows[1]["value"]


def test_a_label_that_is_not_a_number_names_its_line(regression_spec, tmp_path):
    (tmp_path / "valid.tsv").write_text("text\tlabel\na fine film\t0.3\na film\thigh\n")
    from kbuild.tasks.bundle import build

    with pytest.raises(DataError, match=r"valid\.tsv:3: .*finite number.*'high'"):
        build(kbuild.load_spec(regression_spec))
